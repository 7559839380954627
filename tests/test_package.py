"""The package surface: one version, every public name importable, and an import that stays cheap."""

import re
import subprocess
import sys
from pathlib import Path

import c4d_compile


def test_the_version_is_pyprojects():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert c4d_compile.__version__ == re.search(r'^version = "(.+)"$', pyproject, re.M).group(1)


def test_every_public_name_resolves():
    for name in c4d_compile.__all__:
        assert getattr(c4d_compile, name) is not None, name


def test_an_unknown_name_is_an_attribute_error():
    try:
        c4d_compile.not_a_name  # noqa: B018
    except AttributeError as error:
        assert "not_a_name" in str(error)
    else:
        raise AssertionError("an unknown attribute resolved")


def test_import_and_the_cli_parser_do_not_import_dynamo():
    # `c4d --help` and `import c4d_compile` should not pay for Dynamo (seconds on a small machine)
    code = ("import sys, c4d_compile, c4d_compile.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', 'c4d_compile.compiler.backend'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
