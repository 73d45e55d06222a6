"""serverless.yml, checked offline: `serverless package` (v3, from node_modules) builds the
CloudFormation template and the zip without AWS credentials, cfn-lint accepts the template, and
the template and zip hold what a deploy needs and nothing else.

The package step runs once per session (it pip-downloads the aarch64 wheels: seconds).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from asgi_lambda_mw.ratelimit.storage._schema import TTL_ATTRIBUTE, create_table_arguments

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SERVERLESS = REPO / "node_modules" / ".bin" / "serverless"
SERVICE = "asgi-lambda-mw-demo"
FUNCTION = "ApiLambdaFunction"
TABLE = "RateLimitTable"
# serverless v3 adds a DependsOn to the HTTP API route that its own Ref already implies; the
# template is generated, so that warning says nothing about serverless.yml.
CFN_LINT_IGNORED = "W3005"
# The ELF machine number of AArch64 (what Lambda's arm64 architecture runs).
EM_AARCH64 = 183


def _serverless_environment() -> dict[str, str]:
    """The machine's environment without its AWS or library settings, plus dummy credentials
    (package needs none, but v3 looks for some), and no telemetry or update checks."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "RATE_LIMIT", "CORS_", "SLS_", "SERVERLESS_"))
    }
    venv_bin = str(Path(sys.executable).parent)
    env |= {
        "PATH": os.pathsep.join([venv_bin, env.get("PATH", "")]),
        "VIRTUAL_ENV": sys.prefix,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    return env


def _require_serverless() -> None:
    if not SERVERLESS.exists() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("serverless is not installed: run `npm ci` (the Makefile does)")
        pytest.skip("serverless is not installed: run `npm ci`")


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`serverless package` once for the session, into a temporary directory."""
    _require_serverless()
    output = tmp_path_factory.mktemp("serverless-package")
    result = subprocess.run(
        [str(SERVERLESS), "package", "--stage", "test", "--package", str(output)],
        cwd=REPO,
        env=_serverless_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"serverless package failed:\n{result.stdout}\n{result.stderr}"
    yield output


@pytest.fixture(scope="session")
def template(package_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (package_dir / "cloudformation-template-update-stack.json").read_text()
    )
    return loaded


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"]
    return found


@pytest.fixture(scope="session")
def function(resources: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = resources[FUNCTION]["Properties"]
    return properties


@pytest.fixture(scope="session")
def bundle(package_dir: Path) -> Iterator[zipfile.ZipFile]:
    with zipfile.ZipFile(package_dir / f"{SERVICE}.zip") as archive:
        yield archive


@pytest.fixture(scope="session")
def names(bundle: zipfile.ZipFile) -> list[str]:
    return bundle.namelist()


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: body for name, body in resources.items() if body["Type"] == kind}


# -- the template ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["create", "update"])
def test_cfn_lint_accepts_the_template(package_dir: Path, stack: str) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--ignore-checks",
            CFN_LINT_IGNORED,
            "--",
            str(package_dir / f"cloudformation-template-{stack}-stack.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_function_runs_python_3_12_or_later_on_arm64(function: dict[str, Any]) -> None:
    assert function["Runtime"] in {"python3.12", "python3.13"}
    assert function["Architectures"] == ["arm64"]


def test_function_handler_is_the_demo_lambda_handler(function: dict[str, Any]) -> None:
    assert function["Handler"] == "demo_app.main.handler"


def test_function_gives_up_before_api_gateway_does(function: dict[str, Any]) -> None:
    # API Gateway stops waiting after 29 s (REST) or 30 s (HTTP API).
    assert 3 <= function["Timeout"] < 29


def test_function_has_room_for_fastapi(function: dict[str, Any]) -> None:
    # CPU follows memory; below 512 MB FastAPI's import makes cold starts take seconds.
    assert 512 <= function["MemorySize"] <= 3008


def test_logs_are_kept_for_a_limited_time(resources: dict[str, Any]) -> None:
    (log_group,) = _of_type(resources, "AWS::Logs::LogGroup").values()
    assert 1 <= log_group["Properties"]["RetentionInDays"] <= 90


def test_lambda_xray_tracing_is_active(function: dict[str, Any]) -> None:
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_rest_api_stage_tracing_is_requested(package_dir: Path) -> None:
    # serverless v3 turns X-Ray on for the REST stage with an API call during deploy, not in
    # the template: the saved state is where the setting shows.
    state = json.loads((package_dir / "serverless-state.json").read_text())
    assert state["service"]["provider"]["tracing"] == {"lambda": True, "apiGateway": True}


def test_http_api_sends_every_route_to_the_function_as_payload_2(
    resources: dict[str, Any],
) -> None:
    (route,) = _of_type(resources, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "$default"
    integration_ref = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
    integration = resources[integration_ref]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": [FUNCTION, "Arn"]}


def test_rest_api_sends_the_root_and_every_path_to_the_function(
    resources: dict[str, Any],
) -> None:
    methods = _of_type(resources, "AWS::ApiGateway::Method").values()
    resource_ids = set()
    for method in methods:
        properties = method["Properties"]
        assert properties["HttpMethod"] == "ANY"
        assert properties["Integration"]["Type"] == "AWS_PROXY"  # payload 1.0
        assert {"Fn::GetAtt": [FUNCTION, "Arn"]} in properties["Integration"]["Uri"]["Fn::Join"][1]
        resource_ids.add(json.dumps(properties["ResourceId"], sort_keys=True))
    (proxy,) = _of_type(resources, "AWS::ApiGateway::Resource").values()
    assert proxy["Properties"]["PathPart"] == "{proxy+}"
    assert len(resource_ids) == 2  # the root resource and {proxy+}


def test_rest_api_passes_binary_bodies_through(resources: dict[str, Any]) -> None:
    (rest_api,) = _of_type(resources, "AWS::ApiGateway::RestApi").values()
    assert rest_api["Properties"]["BinaryMediaTypes"] == ["*/*"]


def test_table_has_the_key_schema_and_billing_table_create_makes(
    resources: dict[str, Any],
) -> None:
    table = resources[TABLE]
    assert table["Type"] == "AWS::DynamoDB::Table"
    expected = create_table_arguments("ignored")
    del expected["TableName"]
    properties = {name: table["Properties"][name] for name in expected}
    assert properties == expected


def test_table_expires_items_on_the_attribute_the_storage_writes(
    resources: dict[str, Any],
) -> None:
    assert resources[TABLE]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": TTL_ATTRIBUTE,
        "Enabled": True,
    }


def _storage_operations() -> set[str]:
    """The DynamoDB operations DynamoDBStorage calls: ``client.call("UpdateItem", ...)``."""
    source = REPO / "asgi_lambda_mw" / "ratelimit" / "storage" / "dynamodb.py"
    operations = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "call"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            operations.add(node.args[0].value)
    return operations


def _dynamodb_statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for role in _of_type(resources, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                if any(action.startswith("dynamodb:") for action in actions):
                    statements.append(statement | {"Action": actions})
    return statements


def test_role_allows_exactly_the_dynamodb_calls_the_storage_makes(
    resources: dict[str, Any],
) -> None:
    operations = _storage_operations()
    assert "UpdateItem" in operations  # the scan found the storage's calls
    granted = {
        action
        for statement in _dynamodb_statements(resources)
        for action in statement["Action"]
        if statement["Effect"] == "Allow"
    }
    assert granted == {f"dynamodb:{operation}" for operation in operations}


def test_role_allows_dynamodb_on_the_rate_limit_table_only(resources: dict[str, Any]) -> None:
    statements = _dynamodb_statements(resources)
    assert statements
    for statement in statements:
        assert statement["Resource"] == {"Fn::GetAtt": [TABLE, "Arn"]}


def _string_literals(package: Path) -> set[str]:
    literals = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
    return literals


def test_environment_sets_only_variables_the_library_reads(function: dict[str, Any]) -> None:
    variables = function["Environment"]["Variables"]
    assert set(variables) == {"RATE_LIMIT", "RATE_LIMIT_TABLE", "CORS_ALLOW_ORIGINS", "LOG_LEVEL"}
    unknown = set(variables) - _string_literals(REPO / "asgi_lambda_mw")
    assert not unknown, f"serverless.yml sets variables the library never names: {unknown}"


def test_rate_limit_table_variable_names_the_stack_table(function: dict[str, Any]) -> None:
    assert function["Environment"]["Variables"]["RATE_LIMIT_TABLE"] == {"Ref": TABLE}


# -- the zip --------------------------------------------------------------------------------


def _top_level(names: list[str]) -> set[str]:
    return {PurePosixPath(name).parts[0] for name in names}


def test_zip_holds_the_library_and_the_demo_handler(names: list[str]) -> None:
    assert "asgi_lambda_mw/__init__.py" in names
    assert "asgi_lambda_mw/py.typed" in names
    assert "demo_app/main.py" in names


def _requirement_names() -> set[str]:
    with (REPO / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    demo = (REPO / "deploy" / "requirements-demo.txt").read_text().splitlines()
    listed = [*dependencies, *(line for line in demo if line.strip() and line[0] != "#")]
    return {_normalise(re.split(r"[\s<>=!~;\[]", item.strip(), maxsplit=1)[0]) for item in listed}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _installed(names: list[str]) -> set[str]:
    """Distribution names from the zip's ``name-version.dist-info`` directories."""
    return {
        _normalise(top.removesuffix(".dist-info").rsplit("-", 1)[0])
        for top in _top_level(names)
        if top.endswith(".dist-info")
    }


def test_zip_holds_the_runtime_dependencies(names: list[str]) -> None:
    wanted = _requirement_names() | {"pydantic", "pydantic_core", "anyio"}
    assert {"starlette", "mangum", "fastapi"} <= wanted
    assert wanted <= _installed(names)
    assert {"starlette", "mangum", "fastapi", "pydantic", "pydantic_core"} <= _top_level(names)


def test_zip_leaves_out_what_lambda_provides(names: list[str]) -> None:
    assert not {"boto3", "botocore", "s3transfer"} & _installed(names)
    assert not {"boto3", "botocore", "s3transfer"} & _top_level(names)


def _is_extension(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def test_compiled_extensions_are_built_for_python_3_12_on_aarch64(
    bundle: zipfile.ZipFile, names: list[str]
) -> None:
    extensions = [name for name in names if _is_extension(name)]
    assert any(name.startswith("pydantic_core/_pydantic_core.") for name in extensions)
    for name in extensions:
        if "cpython-" in name:
            assert "cpython-312-aarch64-linux-gnu" in name, name
        header = bundle.read(name)[:20]
        assert header[:4] == b"\x7fELF", name
        assert int.from_bytes(header[18:20], "little") == EM_AARCH64, name


def test_zip_leaves_out_tests_tools_and_caches(names: list[str]) -> None:
    unwanted_tops = {
        "tests",
        "bench",
        "deploy",
        "node_modules",
        ".venv",
        ".git",
        ".serverless",
        "bin",
        "serverless.yml",
        "package.json",
        "pyproject.toml",
    }
    assert not unwanted_tops & _top_level(names)
    assert not [name for name in names if name.endswith(".pyo")]


# The flags word of a hash-based .pyc checked against its source on import (PEP 552).
_CHECKED_HASH_FLAGS = 0b11


def test_bytecode_in_the_zip_is_only_for_lambdas_python_and_its_own_sources(
    bundle: zipfile.ZipFile, names: list[str]
) -> None:
    # Nothing from the build machine's caches: every .pyc is for Python 3.12, hash-checked,
    # and sits in the __pycache__ beside a source the zip holds.
    present = set(names)
    for name in names:
        path = PurePosixPath(name)
        if "__pycache__" in path.parts or name.endswith(".pyc"):
            assert path.parent.name == "__pycache__" and path.name.endswith(".cpython-312.pyc")
            source = path.parent.parent / (path.name.split(".", 1)[0] + ".py")
            assert str(source) in present, name
            flags = int.from_bytes(bundle.read(name)[4:8], "little")
            assert flags == _CHECKED_HASH_FLAGS, name


def _lambda_python() -> str:
    """Python 3.12 as deploy/bundle_dependencies.py finds it; the test skips without one."""
    spec = importlib.util.spec_from_file_location(
        "bundle_dependencies", REPO / "deploy" / "bundle_dependencies.py"
    )
    assert spec is not None and spec.loader is not None
    bundler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bundler)
    python: str | None = bundler.find_python("3.12")
    if python is None:
        pytest.skip("no Python 3.12 here: the zip is built without bytecode (and says so)")
    return python


def test_every_module_in_the_zip_has_bytecode(names: list[str]) -> None:
    _lambda_python()
    present = set(names)
    sources = [PurePosixPath(name) for name in names if name.endswith(".py")]
    missing = [
        str(source)
        for source in sources
        if str(source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc") not in present
    ]
    assert not missing


def test_lambdas_python_imports_the_code_from_the_zips_bytecode(
    bundle: zipfile.ZipFile, tmp_path: Path
) -> None:
    # As on Lambda: the unzipped code on a path where nothing can be written, imported by
    # Python 3.12. "-v" names the file each module's code came from.
    python = _lambda_python()
    bundle.extractall(tmp_path)
    result = subprocess.run(
        [python, "-v", "-c", "import asgi_lambda_mw, starlette.applications, mangum"],
        cwd=tmp_path,
        env={
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(tmp_path),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded_from = re.findall(r"^# code object from '?(.+?)'?$", result.stderr, re.MULTILINE)
    from_the_zip = [path for path in loaded_from if path.startswith(str(tmp_path))]
    for package, module in [
        ("asgi_lambda_mw", "__init__"),
        ("asgi_lambda_mw", "handler"),
        ("starlette", "applications"),
        ("mangum", "adapter"),
    ]:
        assert str(tmp_path / package / "__pycache__" / f"{module}.cpython-312.pyc") in from_the_zip
    compiled_here = [path for path in from_the_zip if path.endswith(".py")]
    assert not compiled_here


def test_zip_holds_nothing_but_the_code_and_installed_dependencies(
    bundle: zipfile.ZipFile, names: list[str]
) -> None:
    recorded: set[str] = set()
    for name in names:
        if name.endswith(".dist-info/RECORD"):
            for line in bundle.read(name).decode().splitlines():
                if line:
                    recorded.add(line.rsplit(",", 2)[0])
    ours = {"asgi_lambda_mw", "demo_app"}
    stray = [
        name
        for name in names
        if not name.endswith("/")
        and name not in recorded
        and _top_level([name]).isdisjoint(ours)
        and "__pycache__" not in PurePosixPath(name).parts  # checked by the bytecode test
    ]
    assert not stray


def test_zip_files_are_readable_by_the_lambda_user(bundle: zipfile.ZipFile) -> None:
    for info in bundle.infolist():
        mode = info.external_attr >> 16
        if mode:  # serverless stores modes; 0 means "unknown", which Lambda reads as 0644
            assert mode & 0o444 == 0o444, info.filename
