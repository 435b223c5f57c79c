"""huggingface_hub against grpst's Hub stand-in and grpst's hub cache.

Usage: compat_hub.py REPO_ID HF_CACHE GRPST_CACHE

HF_ENDPOINT names the stand-in. Downloads REPO_ID with huggingface_hub's snapshot_download into
HF_CACHE (so the stand-in must answer as the Hub does), then reads GRPST_CACHE, which `grpst pull`
filled, with the network off (local_files_only): snapshot_download, hf_hub_download and
scan_cache_dir must all find grpst's files. Prints one JSON summary on stdout.
"""
import json
import os
import sys

import huggingface_hub
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download


def listing(snapshot):
    """{path: (link target, size)} of a snapshot folder's files."""
    out = {}
    for root, _dirs, files in os.walk(snapshot):
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, snapshot)
            out[rel] = [os.readlink(full) if os.path.islink(full) else None, os.path.getsize(full)]
    return out


def main():
    repo_id, hf_cache, grpst_cache = sys.argv[1:4]
    downloaded = snapshot_download(repo_id, cache_dir=hf_cache)
    from_grpst = snapshot_download(repo_id, cache_dir=grpst_cache, local_files_only=True)
    config = hf_hub_download(repo_id, "config.json", cache_dir=grpst_cache, local_files_only=True)
    info = scan_cache_dir(grpst_cache)
    repos = [
        {
            "repo_id": r.repo_id,
            "size_on_disk": r.size_on_disk,
            "nb_files": r.nb_files,
            "refs": sorted(ref for rev in r.revisions for ref in rev.refs),
            "commits": sorted(rev.commit_hash for rev in r.revisions),
        }
        for r in info.repos
    ]
    print(json.dumps({
        "version": huggingface_hub.__version__,
        "downloaded": downloaded,
        "downloaded_files": listing(downloaded),
        "from_grpst": from_grpst,
        "from_grpst_files": listing(from_grpst),
        "config": config,
        "scan_repos": repos,
        "scan_warnings": [str(w) for w in info.warnings],
    }))


if __name__ == "__main__":
    main()
