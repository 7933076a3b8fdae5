# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Holds a module's DOCUMENTATION, EXAMPLES and RETURN against its ARGUMENT_SPEC, as ansible-test's
validate-modules would (which needs a download this CI cannot make): the YAML parses, every
option is documented with the spec's type, default, choices and required, and nothing else is;
each example uses only documented options. Prints what is wrong and exits 1, or prints "ok".

    python check_module_doc.py MODULE.py FQCN
"""

from __future__ import annotations

import importlib.util
import sys

import yaml

# Leave no __pycache__ in the collection.
sys.dont_write_bytecode = True


def main(path, fqcn):
    spec = importlib.util.spec_from_file_location("module_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems = []
    doc = yaml.safe_load(module.DOCUMENTATION)
    examples = yaml.safe_load(module.EXAMPLES)
    returns = yaml.safe_load(module.RETURN)
    argspec = module.ARGUMENT_SPEC

    options = doc.get("options") or {}
    for name in sorted(set(argspec) | set(options)):
        if name not in options:
            problems.append("option %s is in the argument spec but not documented" % name)
            continue
        if name not in argspec:
            problems.append("option %s is documented but not in the argument spec" % name)
            continue
        documented, actual = options[name], argspec[name]
        for key, default in (("type", "str"), ("required", False), ("default", None), ("choices", None), ("elements", None)):
            if documented.get(key, default) != actual.get(key, default):
                problems.append(
                    "option %s: %s is %r in DOCUMENTATION but %r in the argument spec"
                    % (name, key, documented.get(key, default), actual.get(key, default))
                )
        if not documented.get("description"):
            problems.append("option %s has no description" % name)
    for key in ("module", "short_description", "description", "author"):
        if not doc.get(key):
            problems.append("DOCUMENTATION has no %s" % key)
    if doc.get("module") != path.rsplit("/", 1)[-1][: -len(".py")]:
        problems.append("DOCUMENTATION's module is %r, not the file's name" % doc.get("module"))
    if doc.get("attributes", {}).get("check_mode", {}).get("support") not in ("full", "partial"):
        problems.append("check_mode support is not documented")

    if not isinstance(examples, list) or not examples:
        problems.append("EXAMPLES is not a list of tasks")
    for task in examples or []:
        args = task.get(fqcn)
        if args is None:
            problems.append("example %r does not use %s" % (task.get("name"), fqcn))
            continue
        for key in args:
            if key not in options:
                problems.append("example %r uses undocumented option %s" % (task.get("name"), key))
        for name, option in options.items():
            if option.get("required") and name not in args:
                problems.append("example %r lacks required option %s" % (task.get("name"), name))

    for name, value in (returns or {}).items():
        for key in ("description", "returned", "type"):
            if key not in value:
                problems.append("RETURN %s has no %s" % (name, key))

    for problem in problems:
        print(problem)
    if problems:
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
