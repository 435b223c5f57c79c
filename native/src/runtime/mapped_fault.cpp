// mapped_fault.h. The handler may run on any thread at any time, so it only reads slots whose
// message was written before their base was published (release / acquire), calls write(2) and
// sigaction(2) (async-signal-safe), and never allocates.
#include "mapped_fault.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace grpst {
namespace {

constexpr int kSlots = 256;  // mapped files at once (a model's shards, a draft's, tensor-parallel ranks')
constexpr size_t kMessage = 768;

struct Slot {
  std::atomic<uintptr_t> base{0};  // 0: free
  std::atomic<size_t> size{0};
  char message[kMessage];
  size_t length = 0;
};

Slot slots[kSlots];
struct sigaction previous;
std::once_flag installed;
std::mutex claim;  // registration only; the handler takes no lock

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(info ? info->si_addr : nullptr);
  for (const Slot& s : slots) {
    const uintptr_t base = s.base.load(std::memory_order_acquire);
    if (base != 0 && at >= base && at - base < s.size.load(std::memory_order_relaxed)) {
      ssize_t ignored = ::write(STDERR_FILENO, s.message, s.length);
      (void)ignored;
      break;
    }
  }
  // Hand the signal back: the faulting read runs again and meets the action there was before
  // (by default the end of the process, as without this handler).
  ::sigaction(sig, &previous, nullptr);
  (void)context;
}

void install() {
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, &previous);
}

}  // namespace

void watch_mapped_range(const void* base, size_t size, const std::string& path) {
  if (base == nullptr || size == 0) return;
  std::call_once(installed, install);
  std::lock_guard<std::mutex> lock(claim);
  for (Slot& s : slots) {
    if (s.base.load(std::memory_order_relaxed) != 0) continue;
    const std::string text = "grpst: fatal: " + path +
                             " was truncated or replaced while the server had it mapped (SIGBUS reading its weights); the "
                             "server cannot go on. Restart it, and leave an engine's files as they are while it serves, or set "
                             "use_mmap: false in the inference conf to read the weights into memory.\n";
    s.length = std::min(text.size(), kMessage);
    std::memcpy(s.message, text.data(), s.length);
    s.size.store(size, std::memory_order_relaxed);
    s.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    return;
  }
  // Every slot taken: that file's fault goes unnamed, as every fault did before.
}

void unwatch_mapped_range(const void* base) {
  std::lock_guard<std::mutex> lock(claim);
  for (Slot& s : slots)
    if (s.base.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(base)) s.base.store(0, std::memory_order_release);
}

}  // namespace grpst
