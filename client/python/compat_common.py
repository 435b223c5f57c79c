"""What the compatibility scripts share: the command line, the check runner and its JSON summary.

Each script runs its checks in order and stops at the first failure: later checks often build on
what an earlier one established (the model id, a tool call to answer), and one clear failure
reads better than a cascade. Progress goes to stderr; stdout gets exactly one line, the JSON
summary, so a caller can parse it whatever happened.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
import urllib.request
from typing import Any, Callable, Dict, List, Optional


class CheckFailed(Exception):
    """An expectation about the server's behaviour did not hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def root_url(server: str) -> str:
    """The server's root from HOST:PORT, http://HOST:PORT or http://HOST:PORT/v1."""
    url = server.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("server", help="the server: HOST:PORT, http://HOST:PORT or http://HOST:PORT/v1")
    p.add_argument("--api_key", "--api-key", dest="api_key", default=os.environ.get("OPENAI_API_KEY") or os.environ.get("GRPST_API_KEY"),
                   help="the server's API key (default: $OPENAI_API_KEY, $GRPST_API_KEY, or none)")
    p.add_argument("--model", default=None, help="the model id to send (default: the one /v1/models lists)")
    args = p.parse_args()
    # A server without api_key accepts any key, so the checks that a wrong one is refused run only
    # with a key; without one the clients still send a placeholder, as their constructors want one.
    args.key_given = bool(args.api_key)
    if not args.key_given:
        args.api_key = "unused"
    args.root = root_url(args.server)
    args.base_url = f"{args.root}/v1"
    return args


def served_model(base_url: str, api_key: str, wanted: Optional[str], state: Dict[str, Any]) -> Dict[str, Any]:
    """The served model and its context from /v1/models, as a user looks them up before configuring
    a client; kept in state["model"] / state["max_model_len"]. Through the openai package, which only
    the OpenAI-based clients' environments hold."""
    import openai

    models = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0).models.list().data
    expect(len(models) >= 1, "/v1/models listed no model")
    model = next((m for m in models if m.id == wanted), None) if wanted else models[0]
    expect(model is not None, f"model {wanted!r} is not served")
    state.update(model=model.id, max_model_len=(model.model_extra or {}).get("max_model_len", 4096))
    return {"model": model.id, "max_model_len": state["max_model_len"]}


def post_json(url: str, body: Dict[str, Any], api_key: str) -> Dict[str, Any]:
    """A plain JSON POST with the standard library, for grpst's own /tokenize and /detokenize."""
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={"content-type": "application/json", "authorization": f"Bearer {api_key}"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as res:
        return json.loads(res.read().decode("utf-8"))


def rendered_prompt(root: str, api_key: str, model: str, messages: List[Dict[str, Any]], tools: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The prompt the server renders for a chat: its token count and its text."""
    body: Dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        body["tools"] = tools
    tok = post_json(f"{root}/tokenize", body, api_key)
    text = post_json(f"{root}/detokenize", {"model": model, "tokens": tok["tokens"]}, api_key)["prompt"]
    return {"count": tok["count"], "text": text}


class Runner:
    """Runs named checks in order; each returns a dict of facts that goes into the summary."""

    def __init__(self, client: str, client_version: str, server: str) -> None:
        self.summary: Dict[str, Any] = {
            "client": client,
            "client_version": client_version,
            "python": platform.python_version(),
            "server": server,
            "ok": True,
            "checks": [],
        }

    def check(self, name: str, fn: Callable[[], Optional[Dict[str, Any]]]) -> None:
        started = time.monotonic()
        print(f"{name} ...", file=sys.stderr, flush=True)
        entry: Dict[str, Any] = {"name": name}
        try:
            entry.update(fn() or {})
            entry["ok"] = True
        except CheckFailed as err:
            self._fail(entry, started, str(err))
        except Exception as err:  # an exception the client raised is a failure of this check too
            traceback.print_exc(file=sys.stderr)
            self._fail(entry, started, f"{type(err).__module__}.{type(err).__name__}: {err}")
        entry["seconds"] = round(time.monotonic() - started, 3)
        self.summary["checks"].append(entry)
        print(f"{name} ok ({entry['seconds']} s)", file=sys.stderr, flush=True)

    def _fail(self, entry: Dict[str, Any], started: float, message: str) -> None:
        entry.update(ok=False, error=message, seconds=round(time.monotonic() - started, 3))
        self.summary["checks"].append(entry)
        self.summary["ok"] = False
        self.summary["failed"] = entry["name"]
        print(f"FAIL {entry['name']}: {message}", file=sys.stderr, flush=True)
        self.finish()

    def finish(self) -> None:
        """Prints the summary and exits: 0 when every check passed, 1 otherwise."""
        print(json.dumps(self.summary, ensure_ascii=False), flush=True)
        sys.exit(0 if self.summary["ok"] else 1)
