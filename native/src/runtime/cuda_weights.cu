#include "runtime/cuda_weights.h"
#include "grpst/model_runner.h"

#include <cuda_runtime.h>

#include <cstring>
#include <string>

namespace grpst {

namespace cu = grpst::cuda;

namespace {

void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw Error("CUDA backend: " + what + ": " + cudaGetErrorString(e));
}
void check(const cu::Status& s) {
  if (!s.ok()) throw Error("CUDA backend: " + s.message());
}

cu::WeightFormat to_cuda(WeightFormat f) {
  switch (f) {
    case WeightFormat::BF16: return cu::WeightFormat::bf16;
    case WeightFormat::INT8_WO: return cu::WeightFormat::int8_wo;
    case WeightFormat::INT4: return cu::WeightFormat::int4_awq;
    case WeightFormat::FP8: return cu::WeightFormat::fp8;
    case WeightFormat::INT8_SQ: return cu::WeightFormat::int8_sq;
  }
  throw Error("CUDA backend: unknown weight format");
}

// Bytes of one stored row of the weight itself, and the distance between rows in the source.
size_t row_bytes(const LinearWeight& w) {
  switch (w.fmt) {
    case WeightFormat::BF16: return size_t(w.in_features) * 2;
    case WeightFormat::INT4: return size_t(w.in_features) / 2;
    default: return size_t(w.in_features);
  }
}
size_t src_pitch(const LinearWeight& w) { return w.fmt == WeightFormat::BF16 ? size_t(w.ldw) * 2 : size_t(w.ldw); }

// Rows of several host matrices into one device matrix: concatenated, or interleaved (row r of
// part p becomes row r * parts + p; the parts then have the same number of rows).
struct Part {
  const void* src;
  size_t pitch;
  int rows;
};
void copy_rows(void* dst, const std::vector<Part>& parts, size_t width, bool interleave, const char* what) {
  size_t row = 0;
  const size_t P = parts.size();
  for (size_t p = 0; p < P; ++p) {
    const Part& pt = parts[p];
    uint8_t* d = static_cast<uint8_t*>(dst) + (interleave ? p * width : row * width);
    check(cudaMemcpy2D(d, interleave ? P * width : width, pt.src, pt.pitch, width, pt.rows, cudaMemcpyHostToDevice), what);
    row += pt.rows;
  }
}

struct Uploader {
  DeviceMemory& mem;
  int64_t bytes = 0;  // read per decode step

  template <class T>
  const T* vec(const T* host, size_t n, const char* what) {
    void* d = mem.get(n * sizeof(T), what);
    check(cudaMemcpy(d, host, n * sizeof(T), cudaMemcpyHostToDevice), what);
    return static_cast<const T*>(d);
  }

  // q/k/v (concatenated) or gate/up (interleaved) as one device weight; a single part otherwise.
  cu::Weight linear(const std::vector<const LinearWeight*>& ws, bool interleave, const std::string& name) {
    const LinearWeight& w0 = *ws[0];
    cu::Weight out;
    out.format = to_cuda(w0.fmt);
    out.K = w0.in_features;
    out.N = 0;
    for (const LinearWeight* w : ws) {
      if (w->fmt != w0.fmt || w->in_features != w0.in_features)
        throw Error("CUDA backend: " + name + ": fused projections differ in format or width");
      out.N += w->out_features;
    }
    const int N = out.N, K = out.K;
    std::vector<Part> rows;
    for (const LinearWeight* w : ws) rows.push_back({w->w, src_pitch(*w), w->out_features});
    const size_t rb = row_bytes(w0);
    auto per_row = [&](const void* (*get)(const LinearWeight&), size_t width) {
      std::vector<Part> p;
      for (const LinearWeight* w : ws) p.push_back({get(*w), width, w->out_features});
      return p;
    };
    switch (w0.fmt) {
      case WeightFormat::BF16:
      case WeightFormat::FP8:
      case WeightFormat::INT8_SQ: {
        void* d = mem.get(size_t(N) * rb, name.c_str());
        copy_rows(d, rows, rb, interleave, name.c_str());
        out.data = d;
        bytes += int64_t(N) * rb;
        if (w0.fmt == WeightFormat::INT8_SQ) {
          void* s = mem.get(size_t(N) * 4, "scales");
          copy_rows(s, per_row([](const LinearWeight& w) { return static_cast<const void*>(w.scales); }, 4), 4, interleave, "scales");
          out.channel_scale = static_cast<const float*>(s);
          bytes += int64_t(N) * 4;
        }
        if (w0.fmt == WeightFormat::FP8) {
          for (const LinearWeight* w : ws)
            if (w->scales[0] != w0.scales[0] || w->input_scale != w0.input_scale)
              throw Error("CUDA backend: " + name + ": fused fp8 projections need one weight_scale and one input_scale "
                          "(rebuild the engine with grpst build)");
          // Each scale in its own allocation: cuBLASLt's fp8 GEMM refused the call (status 15,
          // not supported) with the input scale 4 bytes after the weight scale, and the runtime
          // then fell back to the skinny kernel for every batch of more than 8 rows and prefill.
          out.w_scale = vec(&w0.scales[0], 1, "fp8 weight scale");
          out.x_scale = vec(&w0.input_scale, 1, "fp8 input scale");
        }
        break;
      }
      case WeightFormat::INT8_WO: {
        void* nat = nullptr;
        check(cudaMalloc(&nat, size_t(N) * K), "int8 staging");
        copy_rows(nat, rows, rb, interleave, name.c_str());
        const size_t packed = size_t((N + 15) / 16) * 16 * size_t((K + 63) / 64) * 64;
        void* d = mem.get(packed, name.c_str());
        const cu::Status st = cu::repack_int8_wo(static_cast<const int8_t*>(nat), N, K, static_cast<int8_t*>(d), {});
        check(cudaDeviceSynchronize(), "repack int8");
        cudaFree(nat);
        check(st);
        out.data = d;
        void* s = mem.get(size_t(N) * 4, "scales");
        copy_rows(s, per_row([](const LinearWeight& w) { return static_cast<const void*>(w.scales); }, 4), 4, interleave, "scales");
        out.channel_scale = static_cast<const float*>(s);
        bytes += int64_t(packed) + int64_t(N) * 4;
        break;
      }
      case WeightFormat::INT4: {
        const int G = w0.group_size, ng = (K + G - 1) / G;
        for (const LinearWeight* w : ws)
          if (w->group_size != G) throw Error("CUDA backend: " + name + ": fused projections differ in group size");
        // Symmetric engines store zeros = 8 everywhere: the kernels then use the constant.
        bool symmetric = true;
        for (const LinearWeight* w : ws) {
          const uint8_t* z = static_cast<const uint8_t*>(w->zeros);
          for (size_t i = 0; z && symmetric && i < size_t(w->out_features) * ng; ++i) symmetric = z[i] == 8;
        }
        void *nat = nullptr, *nat_s = nullptr, *nat_z = nullptr;
        check(cudaMalloc(&nat, size_t(N) * K / 2), "int4 staging");
        check(cudaMalloc(&nat_s, size_t(N) * ng * 4), "int4 staging");
        copy_rows(nat, rows, rb, interleave, name.c_str());
        copy_rows(nat_s, per_row([](const LinearWeight& w) { return static_cast<const void*>(w.scales); }, size_t(ng) * 4),
                  size_t(ng) * 4, interleave, "int4 scales");
        if (!symmetric) {
          check(cudaMalloc(&nat_z, size_t(N) * ng), "int4 staging");
          copy_rows(nat_z, per_row([](const LinearWeight& w) { return w.zeros; }, size_t(ng)), size_t(ng), interleave, "int4 zeros");
        }
        const size_t tiles = (N + 15) / 16;
        const size_t packed = tiles * 16 * size_t((K + 63) / 64) * 64 / 2;
        void* d = mem.get(packed, name.c_str());
        void* ps = mem.get(tiles * ng * 16 * 2, "int4 scales");
        void* pz = symmetric ? nullptr : mem.get(tiles * ng * 16 * 2, "int4 zeros");
        const cu::Status st = cu::repack_int4(static_cast<const uint8_t*>(nat), static_cast<const float*>(nat_s),
                                              static_cast<const uint8_t*>(nat_z), N, K, G, static_cast<uint32_t*>(d),
                                              static_cast<cu::bf16*>(ps), static_cast<cu::bf16*>(pz), {});
        check(cudaDeviceSynchronize(), "repack int4");
        cudaFree(nat);
        cudaFree(nat_s);
        if (nat_z) cudaFree(nat_z);
        check(st);
        out.data = d;
        out.group_scale = static_cast<const cu::bf16*>(ps);
        out.group_zero = static_cast<const cu::bf16*>(pz);
        out.group_size = G;
        bytes += int64_t(packed) + int64_t(tiles) * ng * 16 * (symmetric ? 2 : 4);
        break;
      }
    }
    return out;
  }

  // Each expert's input scales [E, H] (AWQ's / SmoothQuant's factors of gate_up's input, which the
  // experts' shared norm cannot absorb), ones for an expert without where another has them; null
  // where no expert has any.
  float* expert_input_scales(const Qwen3Layer& l, size_t H) {
    bool any = false;
    for (const Qwen3Expert& ex : l.experts) any = any || ex.pre_quant_scale != nullptr;
    if (!any) return nullptr;
    float* d = static_cast<float*>(mem.get(l.experts.size() * H * 4, "experts input scales"));
    const std::vector<float> ones(H, 1.f);
    for (size_t e = 0; e < l.experts.size(); ++e) {
      const float* s = l.experts[e].pre_quant_scale;
      check(cudaMemcpy(d + e * H, s ? s : ones.data(), H * 4, cudaMemcpyHostToDevice), "experts input scales");
    }
    return d;
  }

  // int4_awq experts as the CPU backend holds them (nibble rows, fp32 group scales, uint8 zeros),
  // stacked over the experts with gate / up rows interleaved, and their input scales. Returns the
  // bytes one expert's three matrices read.
  size_t int4_experts(const ModelConfig& cfg, const Qwen3Layer& l, const std::string& name, cu::MoeInt4Experts& m) {
    const int E = cfg.moe.num_experts, Im = cfg.moe.intermediate_size, H = cfg.hidden_size;
    const int gg = l.experts[0].gate.group_size, dg = l.experts[0].down.group_size;
    for (const Qwen3Expert& ex : l.experts)
      if (ex.gate.group_size != gg || ex.up.group_size != gg || ex.down.group_size != dg || gg <= 0 || dg <= 0)
        throw Error("CUDA backend: " + name + "experts: int4 group sizes differ between experts or projections");
    const size_t gu_row = size_t(H) / 2, dn_row = size_t(Im) / 2, gu_groups = size_t(H / gg), dn_groups = size_t(Im / dg);
    uint8_t* gu = static_cast<uint8_t*>(mem.get(size_t(E) * 2 * Im * gu_row, "experts gate_up"));
    uint8_t* dn = static_cast<uint8_t*>(mem.get(size_t(E) * H * dn_row, "experts down_proj"));
    float* gus = static_cast<float*>(mem.get(size_t(E) * 2 * Im * gu_groups * 4, "experts gate_up scales"));
    uint8_t* guz = static_cast<uint8_t*>(mem.get(size_t(E) * 2 * Im * gu_groups, "experts gate_up zeros"));
    float* dns = static_cast<float*>(mem.get(size_t(E) * H * dn_groups * 4, "experts down_proj scales"));
    uint8_t* dnz = static_cast<uint8_t*>(mem.get(size_t(E) * H * dn_groups, "experts down_proj zeros"));
    for (int e = 0; e < E; ++e) {
      const Qwen3Expert& ex = l.experts[size_t(e)];
      const size_t gr = size_t(e) * 2 * Im, dr = size_t(e) * H;  // the expert's first rows
      copy_rows(gu + gr * gu_row, {{ex.gate.w, src_pitch(ex.gate), Im}, {ex.up.w, src_pitch(ex.up), Im}}, gu_row, true,
                "experts gate_up");
      copy_rows(gus + gr * gu_groups, {{ex.gate.scales, gu_groups * 4, Im}, {ex.up.scales, gu_groups * 4, Im}},
                gu_groups * 4, true, "experts gate_up scales");
      copy_rows(guz + gr * gu_groups, {{ex.gate.zeros, gu_groups, Im}, {ex.up.zeros, gu_groups, Im}}, gu_groups, true,
                "experts gate_up zeros");
      copy_rows(dn + dr * dn_row, {{ex.down.w, src_pitch(ex.down), H}}, dn_row, false, "experts down_proj");
      copy_rows(dns + dr * dn_groups, {{ex.down.scales, dn_groups * 4, H}}, dn_groups * 4, false, "experts down_proj scales");
      copy_rows(dnz + dr * dn_groups, {{ex.down.zeros, dn_groups, H}}, dn_groups, false, "experts down_proj zeros");
    }
    m.gate_up = gu;
    m.gate_up_scale = gus;
    m.gate_up_zero = guz;
    m.pre_quant_scale = expert_input_scales(l, size_t(H));
    m.gate_up_group = gg;
    m.down = dn;
    m.down_scale = dns;
    m.down_zero = dnz;
    m.down_group = dg;
    return size_t(2) * Im * (gu_row + gu_groups * 5) + size_t(H) * (dn_row + dn_groups * 5) +
           (m.pre_quant_scale ? size_t(H) * 4 : 0);
  }

  // bf16, int8_wo, fp8 or int8_sq experts in their natural rows (bf16: 2 bytes a weight, else 1),
  // stacked with gate / up rows interleaved; the 8-bit formats with one fp32 scale per row
  // ([E, 2 Im] interleaved the same way, [E, H]): int8_wo's and int8_sq's channel scales, fp8's
  // input_scale * weight_scale (the product the CPU backend multiplies a row's sum by). fp8 and
  // int8_sq fill m.w8a8 too: fp8's static input scales per expert (gate's and up's must be one: the
  // fused gate_up quantizes its input once), int8_sq's SmoothQuant factors. Returns the bytes one
  // expert's matrices and scales read.
  size_t row_experts(const ModelConfig& cfg, const Qwen3Layer& l, const std::string& name, WeightFormat fmt,
                     cu::MoeWeights& m) {
    const size_t E = size_t(cfg.moe.num_experts), Im = size_t(cfg.moe.intermediate_size), H = size_t(cfg.hidden_size);
    const bool scaled = fmt != WeightFormat::BF16, fp8 = fmt == WeightFormat::FP8;
    const size_t elem = scaled ? 1 : 2;  // bytes of one weight
    const size_t gate_up_bytes = 2 * Im * H * elem, down_bytes = H * Im * elem;
    uint8_t* gu = static_cast<uint8_t*>(mem.get(E * gate_up_bytes, "experts gate_up"));
    uint8_t* dn = static_cast<uint8_t*>(mem.get(E * down_bytes, "experts down_proj"));
    std::vector<float> gus(scaled ? E * 2 * Im : 0), dns(scaled ? E * H : 0), gis(fp8 ? E : 0), dis(fp8 ? E : 0);
    const auto row_scale = [fp8](const LinearWeight& w, size_t row) {
      return fp8 ? w.input_scale * w.scales[0] : w.scales[row];
    };
    for (size_t e = 0; e < E; ++e) {
      const Qwen3Expert& ex = l.experts[e];
      copy_rows(gu + e * gate_up_bytes, {{ex.gate.w, src_pitch(ex.gate), int(Im)}, {ex.up.w, src_pitch(ex.up), int(Im)}},
                H * elem, true, "experts gate_up");
      copy_rows(dn + e * down_bytes, {{ex.down.w, src_pitch(ex.down), int(H)}}, Im * elem, false, "experts down_proj");
      if (!scaled) continue;
      if (fp8 && ex.gate.input_scale != ex.up.input_scale)
        throw Error("CUDA backend: " + name + "experts." + std::to_string(e) +
                    ": gate_proj and up_proj have different fp8 input scales; the CUDA backend quantizes their shared "
                    "input once (grpst build writes one): run this engine on the CPU backend (device \"cpu\")");
      for (size_t j = 0; j < Im; ++j) {
        gus[e * 2 * Im + 2 * j] = row_scale(ex.gate, j);
        gus[e * 2 * Im + 2 * j + 1] = row_scale(ex.up, j);
      }
      for (size_t n = 0; n < H; ++n) dns[e * H + n] = row_scale(ex.down, n);
      if (fp8) {
        gis[e] = ex.gate.input_scale;
        dis[e] = ex.down.input_scale;
      }
    }
    m.gate_up = gu;
    m.down = dn;
    if (scaled) {
      m.gate_up_scale = vec(gus.data(), gus.size(), "experts gate_up scales");
      m.down_scale = vec(dns.data(), dns.size(), "experts down_proj scales");
    }
    size_t pqs_bytes = 0;
    if (fmt == WeightFormat::FP8 || fmt == WeightFormat::INT8_SQ) {
      cu::MoeW8A8Experts& w = m.w8a8;
      w.fp8 = fp8;
      w.gate_up = gu;
      w.down = dn;
      w.gate_up_scale = m.gate_up_scale;
      w.down_scale = m.down_scale;
      w.gate_up_input_scale = fp8 ? vec(gis.data(), E, "experts gate_up input scales") : nullptr;
      w.down_input_scale = fp8 ? vec(dis.data(), E, "experts down_proj input scales") : nullptr;
      w.pre_quant_scale = fp8 ? nullptr : expert_input_scales(l, H);
      pqs_bytes = w.pre_quant_scale ? H * 4 : 0;
    }
    return gate_up_bytes + down_bytes + (scaled ? (2 * Im + H) * 4 : 0) + pqs_bytes;
  }

  // A sparse layer's router (bf16) and experts (bf16, int8_wo, int4_awq, fp8 or int8_sq, the same
  // format throughout), each kind of matrix stacked over the experts in its natural row order
  // (MoeWeights): the expert kernels stream rows, not the dense kernels' mma-fragment layout. A
  // decode step reads the router and top_k experts per token.
  cu::MoeWeights experts(const ModelConfig& cfg, const Qwen3Layer& l, const std::string& name) {
    const int E = cfg.moe.num_experts, H = cfg.hidden_size;
    if (int(l.experts.size()) != E) throw Error("CUDA backend: " + name + "experts: the layer holds " +
                                                std::to_string(l.experts.size()) + " of " + std::to_string(E));
    const WeightFormat fmt = E > 0 ? l.experts[0].gate.fmt : WeightFormat::BF16;
    for (const Qwen3Expert& ex : l.experts)
      for (const LinearWeight* w : {&ex.gate, &ex.up, &ex.down})
        if (w->fmt != fmt)
          throw Error("CUDA backend: " + name + "experts are " + cu::weight_format_name(to_cuda(w->fmt)) + " and " +
                      cu::weight_format_name(to_cuda(fmt)) +
                      ": the CUDA backend runs Qwen3-MoE experts of one format; run this engine on the CPU backend "
                      "(device \"cpu\")");
    if (l.router.fmt != WeightFormat::BF16) throw Error("CUDA backend: " + name + "router is not bf16");
    cu::MoeWeights m;
    m.format = to_cuda(fmt);
    const size_t router_bytes = size_t(E) * H * 2;
    void* r = mem.get(router_bytes, "router");
    copy_rows(r, {{l.router.w, src_pitch(l.router), E}}, size_t(H) * 2, false, "router");
    m.router = static_cast<const cu::bf16*>(r);
    const size_t expert_bytes = fmt == WeightFormat::INT4 ? int4_experts(cfg, l, name, m.int4) : row_experts(cfg, l, name, fmt, m);
    bytes += int64_t(router_bytes) + int64_t(cfg.moe.experts_per_tok) * int64_t(expert_bytes);
    return m;
  }
};

}  // namespace

void* DeviceMemory::get(size_t n, const char* what) {
  void* p = nullptr;
  check(cudaMalloc(&p, n ? n : 16), std::string("cudaMalloc ") + what + " (" + std::to_string(n >> 20) + " MiB)");
  ptrs.push_back(p);
  bytes += int64_t(n);
  return p;
}

DeviceMemory::~DeviceMemory() {
  for (void* p : ptrs) cudaFree(p);
}

cu::ModelWeights upload_qwen3(const ModelConfig& cfg, const Qwen3Weights& hw, DeviceMemory& mem, int64_t* decode_bytes,
                              const int32_t* cancel) {
  Uploader up{mem};
  const int H = cfg.hidden_size, D = cfg.head_dim;
  cu::ModelWeights w;
  const cu::bf16* embed = reinterpret_cast<const cu::bf16*>(up.vec(hw.embed, size_t(cfg.vocab_size) * H, "embeddings"));
  w.embed = embed;
  w.final_norm = up.vec(hw.final_norm, H, "norm");
  for (int i = 0; i < cfg.num_layers; ++i) {
    // A layer of an 8B model is ~0.4 GB read from the mapped files: a stop waits at most for one.
    test_load_layer_delay(cancel, "GRPST_TEST_UPLOAD_LAYER_DELAY_MS");
    throw_if_load_cancelled(cancel);
    const Qwen3Layer& l = hw.layers[i];
    const std::string p = "layer " + std::to_string(i) + " ";
    cu::LayerWeights lw;
    lw.input_norm = up.vec(l.input_norm, H, "norm");
    lw.post_norm = up.vec(l.post_norm, H, "norm");
    lw.q_norm = up.vec(l.q_norm, D, "norm");
    lw.k_norm = up.vec(l.k_norm, D, "norm");
    lw.qkv = up.linear({&l.q, &l.k, &l.v}, false, p + "qkv");
    lw.o = up.linear({&l.o}, false, p + "o_proj");
    if (cfg.sparse_layer(i)) {
      lw.moe = up.experts(cfg, l, p);
    } else {
      lw.gate_up = up.linear({&l.gate, &l.up}, true, p + "gate_up");
      lw.down = up.linear({&l.down}, false, p + "down_proj");
    }
    up.bytes += int64_t(4) * (2 * H + 2 * D);
    w.layers.push_back(lw);
  }
  // A tied head reads the embedding table unless the build gave it tensors of its own (quantized).
  if (cfg.tie_word_embeddings && hw.lm_head.w == hw.embed) {
    w.lm_head.format = cu::WeightFormat::bf16;
    w.lm_head.N = cfg.vocab_size;
    w.lm_head.K = H;
    w.lm_head.data = embed;
    up.bytes += int64_t(cfg.vocab_size) * H * 2;
  } else {
    w.lm_head = up.linear({&hw.lm_head}, false, "lm_head");
  }
  up.bytes += int64_t(H) * 2;  // one embedding row per token
  w.inv_freq = up.vec(cfg.rope_inv_freq.data(), cfg.rope_inv_freq.size(), "rope table");
  w.attention_scaling = cfg.rope_attention_scaling;
  *decode_bytes = up.bytes;
  return w;
}

}  // namespace grpst
