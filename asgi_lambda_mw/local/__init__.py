"""Private machinery behind `asgi-lambda watch` and `asgi-lambda invoke`: the HTTP<->event
translation of each gateway, a Lambda Runtime API emulator, the function process supervisor and
its runtime loop. Nothing here is public API; the CLI modules are its only users.
"""
