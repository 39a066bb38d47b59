#!/usr/bin/env python3
"""Check the relative links of the documentation.

Every relative link in README.md, docs/*.md and monitoring/*.md (or in
the files named on the command line) must name a file that exists, and a
link with a #fragment must name a heading of that page, its anchor
computed as GitHub computes it. Links to other sites (http:, https:,
mailto:) are not followed.
Prints each broken link as FILE:LINE: TARGET: WHY and exits 1 if
there is any, else 0.

tests/run.py imports this file and calls check_file() per page.
"""
import glob
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FENCE = re.compile(r"^ {0,3}(```|~~~)")
# [text](target "title") and ![alt](target); text may hold `code` and brackets
# one level deep ([`x`](y), [a [b]](c)).
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
ANCHOR_TAG = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def doc_files(repo=REPO):
    """The pages the check covers: README.md, docs/*.md and monitoring/*.md."""
    files = [os.path.join(repo, "README.md")]
    files += sorted(glob.glob(os.path.join(repo, "docs", "*.md")))
    files += sorted(glob.glob(os.path.join(repo, "monitoring", "*.md")))
    return [f for f in files if os.path.exists(f)]


def prose_lines(text):
    """(line number, line) of the lines outside fenced code blocks, with
    inline code spans blanked so that `[x](y)` in code is not a link."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is None:
            yield n, line


def strip_code(line):
    return re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)


def slug(heading):
    """GitHub's anchor for a heading's text: markup dropped, lower case,
    everything but letters, digits, spaces, '-' and '_' removed, spaces
    made '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> text
    text = re.sub(r"<[^>]+>", "", text)                        # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)              # _emphasis_
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path, cache={}):
    """Every anchor a page has: one per heading (repeats get -1, -2, ...)
    and any <a name=...> or id=... tag."""
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found, seen = set(), {}
        for _, line in prose_lines(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                k = seen.get(base, 0)
                seen[base] = k + 1
                found.add(base if k == 0 else f"{base}-{k}")
            for a in ANCHOR_TAG.findall(line):
                found.add(a)
        cache[path] = found
    return cache[path]


def links(text):
    """(line number, target) of every link in the prose."""
    for n, line in prose_lines(text):
        m = REFDEF.match(line)
        if m:
            yield n, m.group(1)
            continue
        for m in INLINE.finditer(strip_code(line)):
            yield n, m.group(1)


def check_file(path, repo=REPO):
    """Broken links of one page, as 'FILE:LINE: TARGET: WHY' strings."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    rel = os.path.relpath(path, repo)
    broken = []
    for n, target in links(text):
        if not target or EXTERNAL.match(target) or target.startswith("//"):
            continue
        file_part, _, fragment = target.partition("#")
        if file_part.startswith("/"):
            dest = os.path.join(repo, file_part.lstrip("/"))
        elif file_part:
            dest = os.path.join(os.path.dirname(path), file_part)
        else:
            dest = path
        dest = os.path.normpath(dest)
        if not os.path.exists(dest):
            broken.append(f"{rel}:{n}: {target}: no such file")
        elif os.path.relpath(dest, repo).startswith(".."):
            broken.append(f"{rel}:{n}: {target}: outside the repository")
        elif fragment:
            if not dest.endswith(".md"):
                broken.append(f"{rel}:{n}: {target}: an anchor into a file that is not markdown")
            elif fragment not in anchors(dest):
                broken.append(f"{rel}:{n}: {target}: no heading with that anchor")
    return broken


def main(argv):
    files = [os.path.abspath(a) for a in argv] or doc_files()
    if not files:
        print("check-links: no README.md or docs/*.md to check", file=sys.stderr)
        return 1
    broken = []
    for f in files:
        broken += check_file(f)
    for b in broken:
        print(b)
    print(f"check-links: {len(files)} files, {len(broken)} broken links", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
