#include "weights.h"

#include <cmath>

#include "device_fill.h"

namespace harness {
namespace cu = grpst::cuda;

void* DevWeight::dev(size_t bytes) {
  void* p = nullptr;
  cuda_ok(cudaMalloc(&p, bytes ? bytes : 16), "weight alloc");
  buffers.emplace_back(p, [](void* q) { cudaFree(q); });
  return p;
}

ref::HostWeight random_host_weight(cu::WeightFormat f, int N, int K, Rng& r, int group_size, bool zeros) {
  ref::HostWeight h;
  h.format = f;
  h.N = N;
  h.K = K;
  const float a = 1.7f / std::sqrt(static_cast<float>(K));
  const size_t n = static_cast<size_t>(N) * K;
  switch (f) {
    case cu::WeightFormat::bf16: h.bf16 = rand_bf16(r, n, a); break;
    case cu::WeightFormat::int8_wo:
    case cu::WeightFormat::int8_sq:
      h.i8.resize(n);
      for (auto& v : h.i8) v = static_cast<int8_t>(r.below(255) - 127);
      h.channel_scale.resize(N);
      for (auto& s : h.channel_scale) s = a / 127.f * (0.5f + r.uniform());
      break;
    case cu::WeightFormat::int4_awq: {
      h.group_size = group_size;
      h.i4.resize(n / 2);
      for (auto& b : h.i4) b = static_cast<uint8_t>(r.below(256));
      const int ng = (K + group_size - 1) / group_size;
      h.group_scale.resize(static_cast<size_t>(N) * ng);
      for (auto& s : h.group_scale) s = a / 7.f * (0.5f + r.uniform());
      if (zeros) {
        h.group_zero.resize(static_cast<size_t>(N) * ng);
        for (auto& z : h.group_zero) z = static_cast<uint8_t>(r.below(16));
      }
      break;
    }
    case cu::WeightFormat::fp8:
      h.w_scale = a / 224.f;
      h.x_scale = 1.f / 64.f;
      h.e4m3.resize(n);
      for (auto& v : h.e4m3) v = f2e4m3(r.sym(a) / h.w_scale);
      break;
  }
  return h;
}

DevWeight to_device(const ref::HostWeight& h) {
  DevWeight d;
  cu::Weight& w = d.w;
  w.format = h.format;
  w.N = h.N;
  w.K = h.K;
  switch (h.format) {
    case cu::WeightFormat::bf16: w.data = d.upload(h.bf16); break;
    case cu::WeightFormat::int8_sq:
      w.data = d.upload(h.i8);
      w.channel_scale = d.upload(h.channel_scale);
      break;
    case cu::WeightFormat::int8_wo: {
      const int8_t* nat = d.upload(h.i8);
      auto* packed = static_cast<int8_t*>(d.dev(static_cast<size_t>((h.N + 15) / 16) * 16 * ((h.K + 63) / 64) * 64));
      Checks::get().status("repack_int8_wo", cu::repack_int8_wo(nat, h.N, h.K, packed, {}));
      w.data = packed;
      w.channel_scale = d.upload(h.channel_scale);
      break;
    }
    case cu::WeightFormat::int4_awq: {
      const uint8_t* nat = d.upload(h.i4);
      const int ng = (h.K + h.group_size - 1) / h.group_size;
      const size_t tiles = (h.N + 15) / 16;
      auto* packed = static_cast<uint32_t*>(d.dev(tiles * 16 * ((h.K + 63) / 64) * 64 / 2));
      auto* ps = static_cast<cu::bf16*>(d.dev(tiles * ng * 16 * 2));
      cu::bf16* pz = h.group_zero.empty() ? nullptr : static_cast<cu::bf16*>(d.dev(tiles * ng * 16 * 2));
      const uint8_t* zs = h.group_zero.empty() ? nullptr : d.upload(h.group_zero);
      Checks::get().status("repack_int4", cu::repack_int4(nat, d.upload(h.group_scale), zs, h.N, h.K, h.group_size,
                                                          packed, ps, pz, {}));
      w.data = packed;
      w.group_scale = ps;
      w.group_zero = pz;
      w.group_size = h.group_size;
      break;
    }
    case cu::WeightFormat::fp8:
      w.data = d.upload(h.e4m3);
      w.w_scale = d.upload(std::vector<float>{h.w_scale});
      w.x_scale = d.upload(std::vector<float>{h.x_scale});
      break;
  }
  return d;
}

DevWeight random_device_weight(cu::WeightFormat f, int N, int K, uint64_t seed) {
  DevWeight d;
  d.w.format = f;
  d.w.N = N;
  d.w.K = K;
  d.w.group_size = 128;
  const size_t n = static_cast<size_t>(N) * K;
  switch (f) {
    case cu::WeightFormat::bf16: {
      auto* p = static_cast<cu::bf16*>(d.dev(n * 2));
      fill_bf16(p, n, 0.02f, 0, seed);
      d.w.data = p;
      break;
    }
    case cu::WeightFormat::int8_wo:
    case cu::WeightFormat::int8_sq: {
      void* p = d.dev(n);
      fill_bytes(p, n, seed);
      auto* cs = static_cast<float*>(d.dev(static_cast<size_t>(N) * 4));
      fill_f32(cs, N, 0.0001f, 0.0002f, seed);
      d.w.data = p;
      d.w.channel_scale = cs;
      break;
    }
    case cu::WeightFormat::int4_awq: {
      void* p = d.dev(n / 2);
      fill_bytes(p, n / 2, seed);
      auto* gs = static_cast<cu::bf16*>(d.dev(n / 128 * 2));
      fill_bf16(gs, n / 128, 0.001f, 0.002f, seed);
      d.w.data = p;
      d.w.group_scale = gs;
      break;
    }
    case cu::WeightFormat::fp8: {
      auto* p = static_cast<uint8_t*>(d.dev(n));
      fill_e4m3(p, n, 8.f, seed);
      d.w.data = p;
      d.w.w_scale = d.upload(std::vector<float>{0.002f});
      d.w.x_scale = d.upload(std::vector<float>{0.05f});
      break;
    }
  }
  return d;
}

}  // namespace harness
