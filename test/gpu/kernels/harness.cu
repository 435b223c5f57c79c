#include "harness.h"

#include <cuda_fp8.h>

namespace harness {

uint8_t f2e4m3(float f) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(f, __NV_SATFINITE, __NV_E4M3));
}
float e4m32f(uint8_t b) {
  __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
  return __half2float(__half(h));
}

bool cuda_ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  Checks::get().expect(std::string("cuda: ") + what, false, cudaGetErrorString(e));
  return false;
}

Checks& Checks::get() {
  static Checks c;
  return c;
}

bool Checks::compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& ref,
                     double tol) {
  CheckResult r{name, 0, 0, tol, true, ""};
  if (got.size() != ref.size()) {
    r.pass = false;
    r.note = "size " + std::to_string(got.size()) + " vs " + std::to_string(ref.size());
  } else {
    double num = 0, den = 0;
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (!std::isfinite(got[i]) && std::isfinite(ref[i])) { ++bad; continue; }
      const double d = static_cast<double>(got[i]) - ref[i];
      if (std::isfinite(ref[i])) {
        num += d * d;
        den += static_cast<double>(ref[i]) * ref[i];
        r.max_abs = std::max(r.max_abs, std::fabs(d));
      }
    }
    r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    if (bad) {
      r.pass = false;
      r.note = std::to_string(bad) + " non-finite (unwritten?) elements";
    }
    if (!(r.rel_l2 <= tol)) r.pass = false;
  }
  results_.push_back(r);
  return r.pass;
}

bool Checks::expect(const std::string& name, bool ok, const std::string& note) {
  results_.push_back(CheckResult{name, 0, 0, 0, ok, note});
  return ok;
}

bool Checks::status(const std::string& name, const Status& s) {
  if (s.ok()) return true;
  return expect(name, false, s.message());
}

int Checks::failures() const {
  int n = 0;
  for (const auto& r : results_) n += r.pass ? 0 : 1;
  return n;
}

void Checks::print() const {
  std::printf("\n%-58s %10s %10s %9s  %s\n", "check", "rel_l2", "max_abs", "tol", "result");
  for (const auto& r : results_)
    std::printf("%-58s %10.2e %10.2e %9.1e  %s %s\n", r.name.c_str(), r.rel_l2, r.max_abs, r.tol,
                r.pass ? "PASS" : "FAIL", r.note.c_str());
  std::printf("%d checks, %d failed\n", static_cast<int>(results_.size()), failures());
}

static std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (c == '\n') { o += "\\n"; continue; }
    o += c;
  }
  return o;
}

void Checks::write_json(FILE* f) const {
  std::fprintf(f, "[\n");
  for (size_t i = 0; i < results_.size(); ++i) {
    const auto& r = results_[i];
    std::fprintf(f, "  {\"name\":\"%s\",\"rel_l2\":%.6g,\"max_abs\":%.6g,\"tol\":%.3g,\"pass\":%s,\"note\":\"%s\"}%s\n",
                 esc(r.name).c_str(), r.rel_l2, r.max_abs, r.tol, r.pass ? "true" : "false", esc(r.note).c_str(),
                 i + 1 < results_.size() ? "," : "");
  }
  std::fprintf(f, "]\n");
}

Bench& Bench::get() {
  static Bench b;
  return b;
}

void Bench::add(const std::string& group, const std::string& name, double value, const std::string& unit,
                const std::string& note) {
  rows_.push_back(BenchRow{group, name, value, unit, note});
  std::printf("  [%s] %-48s %12.3f %-8s %s\n", group.c_str(), name.c_str(), value, unit.c_str(), note.c_str());
  std::fflush(stdout);
}

void Bench::print() const {
  std::printf("\n%-14s %-50s %12s %-8s %s\n", "group", "measure", "value", "unit", "note");
  for (const auto& r : rows_)
    std::printf("%-14s %-50s %12.3f %-8s %s\n", r.group.c_str(), r.name.c_str(), r.value, r.unit.c_str(),
                r.note.c_str());
}

void Bench::write_json(FILE* f) const {
  std::fprintf(f, "[\n");
  for (size_t i = 0; i < rows_.size(); ++i) {
    const auto& r = rows_[i];
    std::fprintf(f, "  {\"group\":\"%s\",\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"note\":\"%s\"}%s\n",
                 esc(r.group).c_str(), esc(r.name).c_str(), r.value, esc(r.unit).c_str(), esc(r.note).c_str(),
                 i + 1 < rows_.size() ? "," : "");
  }
  std::fprintf(f, "]\n");
}

}  // namespace harness
