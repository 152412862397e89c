"""Inputs that held or crashed a web worker before the limits of genesis/documents.py and genesis/uploads.py, shared
by the tests of every path that reads them: YAML and JSON documents, and request bodies that must not be read."""

GIB = 1024**3
MULTIPART = "multipart/form-data; boundary=x"

BLUEPRINT_HEAD = ("slug: laughs\nname: Laughs\nphases:\n- name: One\n  actions:\n  - key: a\n    title: A\n"
                  "    owner: noop\n    config:\n")


def billion_laughs(*, indent: str = "", width: int = 10, levels: int = 10) -> str:
    """Mappings of anchored lists, each naming the one before ``width`` times: under 1 KB of text, ``width **
    levels`` (ten billion) strings once the aliases are followed."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"{indent}l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def billion_laughs_blueprint() -> str:
    """A blueprint whose one action's config is a billion laughs (the probe's file: its tree was walked whole)."""
    return BLUEPRINT_HEAD + billion_laughs(indent="      ")


def deep_flow_yaml(levels: int) -> str:
    """``a: [[[...]]]``: lists nested ``levels`` deep in flow style."""
    return "a: " + "[" * levels + "]" * levels + "\n"


def deep_block_yaml(levels: int) -> str:
    """``- - - ... 1``: lists nested ``levels`` deep in block style, on one line."""
    return "- " * levels + "1\n"


def deep_json(levels: int) -> str:
    """``{"a": [[[...]]]}``: an object holding lists nested ``levels`` deep."""
    return '{"a": ' + "[" * levels + "]" * levels + "}"


class UnreadBody:
    """A request body (``wsgi.input``) that fails the test if any of it is read."""

    def read(self, *args, **kwargs):
        raise AssertionError("the request body was read")

    readline = read


def claiming(size: int) -> dict:
    """Request META for a body that claims ``size`` bytes and fails the test if it is read (pass it to
    ``client.generic`` with a non-empty body and ``content_type=MULTIPART``)."""
    return {"CONTENT_LENGTH": str(size), "wsgi.input": UnreadBody()}
