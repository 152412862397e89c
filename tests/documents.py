"""Documents that held or crashed a web worker before the limits of genesis/documents.py, shared by the tests of every
path that reads them."""

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
