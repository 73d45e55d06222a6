"""`asgi-lambda events list | show NAME`: the sample Lambda events bundled with the package.

Each is written from AWS's documentation of its payload; ``list`` shows where, ``show`` prints
the JSON to feed `asgi-lambda invoke --data-file -` or a test.
"""

from __future__ import annotations

import argparse
import sys

from ..events import SAMPLE_EVENTS, UnknownSampleEvent, sample_event
from . import CommandError

__all__ = ["register"]


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``events list`` and ``events show`` to the ``asgi-lambda`` parser."""
    events = subcommands.add_parser(
        "events",
        help="list or show the bundled sample Lambda events",
        description="Sample Lambda events (API Gateway REST and HTTP API, ALB, Function URL).",
    )
    actions = events.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="name, payload format and description of each")
    listing.add_argument(
        "--urls", action="store_true", help="also print the AWS documentation page of each"
    )
    listing.set_defaults(command=_list_command)
    show = actions.add_parser("show", help="print one event as JSON")
    show.add_argument("name", metavar="NAME", help="an event name from `asgi-lambda events list`")
    show.set_defaults(command=_show_command)


def _list_command(args: argparse.Namespace) -> int:
    name_width = max(len(event.name) for event in SAMPLE_EVENTS)
    format_width = max(len(event.event_format) for event in SAMPLE_EVENTS)
    for event in SAMPLE_EVENTS:
        kind = f"{event.event_format:<{format_width}}"
        print(f"{event.name:<{name_width}}  {kind}  {event.description}")
        if args.urls:
            print(f"{'':<{name_width}}  {event.doc_url}")
    return 0


def _show_command(args: argparse.Namespace) -> int:
    try:
        event = sample_event(args.name)
    except UnknownSampleEvent as error:
        raise CommandError(str(error)) from None
    sys.stdout.write(event.text())
    return 0
