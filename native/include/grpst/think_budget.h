// A sequence's place in its think block, for the thinking token budget (Request::think_max_tokens).
// Device-neutral: the scheduler forces the closing token on the host, whatever backend sampled
// the other tokens, so the budget holds on CPU and CUDA alike and composes with grammars (the
// closing token is always a way out of a grammar's free-text think block).
#pragma once
#include <cstdint>
#include <vector>

#include "grpst/request.h"

namespace grpst {

struct ThinkState {
  enum Phase : uint8_t { Before = 0, Inside = 1, Closed = 2 };
  Phase phase = Before;
  int used = 0;  // tokens generated inside the open block
};

/**
 * Where generation starts: inside a block when the prompt's last think token is the opening one
 * (templates that open the block in the generation prompt, or a continued assistant turn), else
 * before any block. Without a budget nothing is tracked.
 */
inline ThinkState think_start(const Request& r) {
  ThinkState t;
  if (r.think_max_tokens < 0) return t;
  for (auto it = r.prompt.rbegin(); it != r.prompt.rend(); ++it) {
    if (*it == r.think_open) {
      t.phase = ThinkState::Inside;
      break;
    }
    if (*it == r.think_close) break;
  }
  return t;
}

/** The next token must close the block: it is open and its budget is spent. */
inline bool think_forced(const Request& r, const ThinkState& t) {
  return r.think_max_tokens >= 0 && t.phase == ThinkState::Inside && t.used >= r.think_max_tokens;
}

/** Follows one generated token. Only the first block is bounded (Qwen3 thinks once per turn). */
inline void think_advance(const Request& r, ThinkState& t, int32_t token) {
  if (r.think_max_tokens < 0) return;
  if (t.phase == ThinkState::Before && token == r.think_open)
    t.phase = ThinkState::Inside;
  else if (t.phase == ThinkState::Inside && token == r.think_close)
    t.phase = ThinkState::Closed;
  else if (t.phase == ThinkState::Inside)
    t.used++;
}

}  // namespace grpst
