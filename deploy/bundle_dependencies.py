"""Adds the function's Python dependencies, as wheels built for Lambda's CPU and Python, to the
zip `serverless package` made of the source (asgi_lambda_mw/ and demo_app/), and bytecode for
Lambda's Python for all of it when that Python is on this machine.

Run by deploy/python-bundle-plugin.js after serverless zips the code; no Docker needed: pip picks
manylinux wheels for the target with --platform/--python-version and never builds from source.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_REQUIREMENTS = Path(__file__).resolve().parent / "requirements-demo.txt"

# Lambda's Python runtimes ship these (boto3 and what only it needs); a copy in the zip would
# shadow the runtime's and add megabytes to every cold start.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})

# Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels load there,
# and so do the manylinux2014 (glibc 2.17) ones most projects publish.
_PLATFORMS = {
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
}
# 1980-01-01, zip's epoch: the same inputs give the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class BundleError(Exception):
    """The dependencies cannot be bundled; the message says why."""


def requirements() -> list[str]:
    """The library's runtime dependencies (pyproject.toml) plus what the demo needs."""
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    listed = [line.split("#", 1)[0].strip() for line in DEMO_REQUIREMENTS.read_text().splitlines()]
    return [*project["dependencies"], *(line for line in listed if line)]


def install(target: Path, *, python_version: str, architecture: str) -> None:
    """pip-install requirements() into ``target`` as binary wheels for the Lambda platform."""
    if architecture not in _PLATFORMS:
        raise BundleError(f"unknown architecture {architecture!r}: use arm64 or x86_64")
    if not re.fullmatch(r"3\.\d+", python_version):
        raise BundleError(f"python version {python_version!r} is not like 3.12")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # Lambda's file system is read-only: .pyc for another Python is waste
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        *(f"--platform={platform}" for platform in _PLATFORMS[architecture]),
        *requirements(),
    ]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise BundleError(f"pip install failed (status {result.returncode})")


def prune(target: Path) -> None:
    """Remove what Lambda provides or never uses: boto3 & co., scripts, byte-code caches."""
    for distribution in importlib.metadata.distributions(path=[str(target)]):
        name = distribution.metadata["Name"]
        if name is not None and name.lower() in PROVIDED_BY_RUNTIME:
            for file in distribution.files or ():
                Path(str(distribution.locate_file(file))).unlink(missing_ok=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts, for another machine
    for path in sorted(target.rglob("*"), reverse=True):  # children before their parents
        if path.is_dir() and (path.name == "__pycache__" or not any(path.iterdir())):
            shutil.rmtree(path)


def add_to_zip(archive: Path, source: Path) -> int:
    """Append every file under ``source`` to ``archive`` at the zip's root; returns the count."""
    files = sorted(path for path in source.rglob("*") if path.is_file())
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as bundle:
        clashes = _top_level(bundle.namelist()) & _top_level(
            path.relative_to(source).as_posix() for path in files
        )
        if clashes:
            raise BundleError(f"{archive.name} already holds {', '.join(sorted(clashes))}")
        _append(bundle, source, files)
    return len(files)


def _append(bundle: zipfile.ZipFile, root: Path, files: Iterable[Path]) -> None:
    for path in files:
        entry = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_ZIP_DATE)
        # Readable by everyone: Lambda runs the code as another user than the one who zipped.
        mode = stat.S_IMODE(path.stat().st_mode) | 0o444
        entry.external_attr = (stat.S_IFREG | mode) << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        bundle.writestr(entry, path.read_bytes())


def find_python(version: str) -> str | None:
    """A Python ``version`` interpreter on this machine: ``python3.12`` on PATH, else one that
    pyenv installed; None when there is none. Each candidate is run to check what it is (pyenv
    puts shims on PATH that fail for versions not selected)."""
    candidates = [f"python{version}"]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(
        (str(path) for path in pyenv_root.glob(f"versions/{version}.*/bin/python{version}")),
        reverse=True,
    )
    for candidate in candidates:
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if result.returncode == 0 and result.stdout.strip() == version:
            return candidate
    return None


def compile_bytecode(python: str, root: Path) -> None:
    """Compile every .py under ``root`` with ``python`` into __pycache__ beside it.

    Lambda's file system is read-only, so without these every cold start compiles each module
    it imports (the demo: about 4x the CPU of a cold start with bytecode). Hash-checked .pyc:
    used only while the source is unchanged, and the same bytes for the same sources.
    """
    command = [python, "-m", "compileall", "-q", "-j", "0", "-s", str(root)]
    command += ["--invalidation-mode", "checked-hash", str(root)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:  # a file this Python cannot compile: it is compiled if imported
        print(
            "bundle_dependencies: warning: some files were left without bytecode:\n"
            + (result.stdout + result.stderr)[-2000:],
            file=sys.stderr,
        )


def add_source_bytecode(archive: Path, python: str) -> int:
    """Add bytecode for the .py files already in ``archive`` (the code serverless zipped)."""
    with tempfile.TemporaryDirectory(prefix="lambda-code-") as directory:
        root = Path(directory)
        with zipfile.ZipFile(archive) as bundle:
            sources = [name for name in bundle.namelist() if name.endswith(".py")]
            bundle.extractall(root, members=sources)
        compile_bytecode(python, root)
        compiled = sorted(root.rglob("__pycache__/*.pyc"))
        with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as bundle:
            _append(bundle, root, compiled)
    return len(compiled)


def _top_level(names: Iterable[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("zip", type=Path, help="the zip serverless made of the function's code")
    parser.add_argument("--python-version", required=True, help="Lambda's Python, e.g. 3.12")
    parser.add_argument("--architecture", required=True, choices=sorted(_PLATFORMS))
    args = parser.parse_args(argv)
    if not args.zip.is_file():
        print(f"bundle_dependencies: no such zip: {args.zip}", file=sys.stderr)
        return 2
    python = find_python(args.python_version)
    try:
        with tempfile.TemporaryDirectory(prefix="lambda-deps-") as directory:
            target = Path(directory)
            install(target, python_version=args.python_version, architecture=args.architecture)
            prune(target)
            if python is not None:
                compile_bytecode(python, target)
            count = add_to_zip(args.zip, target)
        if python is not None:
            count += add_source_bytecode(args.zip, python)
    except BundleError as error:
        print(f"bundle_dependencies: {error}", file=sys.stderr)
        return 1
    print(
        f"bundle_dependencies: added {count} files for Python {args.python_version} "
        f"on {args.architecture} to {args.zip.name}"
    )
    if python is None:
        print(
            f"bundle_dependencies: warning: no Python {args.python_version} here, so the zip has "
            "no bytecode and every cold start compiles the code it imports (several times the "
            f"CPU of a cold start with bytecode); install Python {args.python_version} to fix",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
