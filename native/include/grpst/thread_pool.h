// A persistent pool of worker threads for the forward pass. The calling thread (the engine
// loop) works too, so a pool of N runs on N threads. Workers spin briefly between jobs (steps
// follow each other closely) and then sleep. One job at a time: only the engine loop calls it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace grpst {

class ThreadPool {
 public:
  /** num_threads counts the caller; 1 means no workers at all. */
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return num_threads_; }

  /** Runs fn(task, thread) for every task in [0, n), tasks handed out dynamically. */
  template <class F>
  void parallel_for(int n, F&& fn) {
    auto thunk = [](void* ctx, int task, int thread) { (*static_cast<F*>(ctx))(task, thread); };
    run(n, thunk, &fn);
  }

  /** Runs fn(thread, num_threads) once on every thread (static partitioning). */
  template <class F>
  void on_all(F&& fn) {
    int nt = num_threads_;
    parallel_for(nt, [&](int task, int) { fn(task, nt); });
  }

 private:
  using Thunk = void (*)(void*, int, int);
  void run(int n, Thunk thunk, void* ctx);
  void worker_main(int index);
  void work(int thread);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_task_{0};
  std::atomic<int> busy_workers_{0};
  std::atomic<bool> stop_{false};
  int num_tasks_ = 0;
  Thunk thunk_ = nullptr;
  void* ctx_ = nullptr;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

/** Splits [0, n) into `parts` contiguous ranges, the first ones one longer; range `i` is returned. */
inline void split_range(int n, int parts, int i, int& begin, int& end) {
  int base = n / parts, extra = n % parts;
  begin = i * base + (i < extra ? i : extra);
  end = begin + base + (i < extra ? 1 : 0);
}

}  // namespace grpst
