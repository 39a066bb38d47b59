#!/usr/bin/env python3
"""Check that calls only go down the layers of app/ (app/LAYERS, lowest
first): every project include is written "layer/name.h", names an existing
header, and never names a layer above the including file's; and the graph
of includes between folders has no cycle. Prints each offence and exits 1,
or prints a summary and exits 0.

    scripts/check-layers.py [ROOT]     (ROOT: the repository, default ..)
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layers_of(root):
    with open(os.path.join(root, "app", "LAYERS")) as f:
        names = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    return {name: rank for rank, name in enumerate(names)}


def sources(root):
    for folder, _, files in os.walk(os.path.join(root, "app")):
        for name in sorted(files):
            if name.endswith((".c", ".h")):
                yield os.path.join(folder, name)


def find_cycle(edges):
    """A cycle in {node: set(nodes)} as a list, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def check(root):
    rank = layers_of(root)
    top = len(rank)  # app/main.c
    problems, edges, count = [], {}, 0
    for path in sources(root):
        rel = os.path.relpath(path, os.path.join(root, "app"))
        folder = os.path.dirname(rel)
        if folder == "":
            if rel != "main.c":
                problems.append(f"app/{rel}: only main.c sits at the top of app/")
            mine = top
        elif folder not in rank:
            problems.append(f"app/{rel}: folder {folder} is not in app/LAYERS")
            continue
        else:
            mine = rank[folder]
        with open(path, errors="replace") as f:
            text = f.read()
        for target in INCLUDE.findall(text):
            count += 1
            layer = target.split("/", 1)[0] if "/" in target else None
            if layer is None or layer not in rank:
                problems.append(f"app/{rel}: #include \"{target}\" names no layer "
                                "(write \"layer/name.h\")")
                continue
            if not os.path.exists(os.path.join(root, "app", target)):
                problems.append(f"app/{rel}: #include \"{target}\": no such header")
            if rank[layer] > mine:
                problems.append(f"app/{rel}: #include \"{target}\" goes up "
                                f"from {folder or 'main'} to {layer}")
            if folder and layer != folder:
                edges.setdefault(folder, set()).add(layer)
    cycle = find_cycle(edges)
    if cycle:
        problems.append("a cycle between folders: " + " -> ".join(cycle))
    return problems, count, edges


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems, count, edges = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)")
        return 1
    print(f"check-layers: {count} includes, 0 upward, 0 cycles between "
          f"{len(edges)} folders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
