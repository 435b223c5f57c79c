// The whole-weight passes of a quantized build in native code, each the exact twin of its
// TypeScript definition (the reference, and what tests compare against byte for byte):
//   absMax            src/quant/fp8.ts absMax (NaN skipped, as `v > m` skips it)
//   columnAbsMaxInto  src/quant/int8-sq.ts columnAbsMaxInto (Math.max: NaN wins)
//   awqWeightMeanInto src/quant/awq.ts addWeightMean (sums in double, rows in order per column)
//   scaleColumns / divideRows  src/quant/smoothing.ts
//   quantizeInt8Rows  src/quant/int8-wo.ts quantizeRowsInt8
//   quantizeE4m3      src/quant/fp8.ts quantizeE4m3 (the quotient kept in double, as JS does)
//   decodeBf16        src/quant/numeric.ts decodeFloats(bytes, 'BF16')
//   rowDots           src/quant/expert-stats.ts rowDots (an unrouted MoE expert's SwiGLU statistics)
// An 8B model passes ~190M weights a layer through several of them; in JavaScript they were most
// of a GPU build's time. Rows (or column blocks) run on the pool's threads; every result is
// independent of the thread count (maxima are exact, each column's sum keeps its row order).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "addon/quant_pool.h"

namespace grpst::addon {

namespace {

// Math.max over floats: NaN if either is NaN.
inline float js_max(float a, float b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

Napi::Float32Array f32_arg(const Napi::CallbackInfo& info, int i, const char* fn, const char* what) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + what + " must be a Float32Array");
  return info[i].As<Napi::Float32Array>();
}

int int_arg(const Napi::CallbackInfo& info, int i, const char* fn, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + what + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

/** A [rows, cols] Float32Array argument at i (data), i + 1 (rows), i + 2 (cols). */
struct MatrixArg {
  float* data;
  int rows, cols;
};

MatrixArg matrix_arg(const Napi::CallbackInfo& info, int i, const char* fn) {
  Napi::Float32Array a = f32_arg(info, i, fn, "w");
  const int rows = int_arg(info, i + 1, fn, "rows"), cols = int_arg(info, i + 2, fn, "cols");
  if (rows < 0 || cols <= 0 || a.ElementLength() != size_t(rows) * cols)
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": w must hold rows x cols values");
  return {a.Data(), rows, cols};
}

// Column blocks of at least this many columns per task, so a task's row walk reads whole lines.
constexpr int kColumnBlock = 256;

template <class F>
void over_column_blocks(int cols, int align, F&& fn) {
  const int width = std::max(align, (kColumnBlock + align - 1) / align * align);
  const int blocks = (cols + width - 1) / width;
  quant_pool().parallel_for(blocks, [&](int b, int) { fn(b * width, std::min(cols, (b + 1) * width)); });
}

Napi::Value AbsMax(const Napi::CallbackInfo& info) {
  Napi::Float32Array a = f32_arg(info, 0, "absMax", "values");
  const float* p = a.Data();
  const size_t n = a.ElementLength();
  constexpr size_t kChunk = size_t(1) << 20;
  const int chunks = int((n + kChunk - 1) / kChunk);
  std::vector<float> part(std::max(chunks, 1), 0.0f);
  quant_pool().parallel_for(chunks, [&](int c, int) {
    float m = 0;
    for (size_t i = size_t(c) * kChunk, end = std::min(n, i + kChunk); i < end; i++) {
      const float v = std::fabs(p[i]);
      if (v > m) m = v;  // NaN compares false: skipped, as in the TypeScript
    }
    part[c] = m;
  });
  float m = 0;
  for (float v : part) m = std::max(m, v);
  return Napi::Number::New(info.Env(), m);
}

Napi::Value ColumnAbsMaxInto(const Napi::CallbackInfo& info) {
  const MatrixArg w = matrix_arg(info, 0, "columnAbsMaxInto");
  Napi::Float32Array into = f32_arg(info, 3, "columnAbsMaxInto", "into");
  if (into.ElementLength() != size_t(w.cols)) throw Napi::RangeError::New(info.Env(), "columnAbsMaxInto: into must hold cols values");
  float* out = into.Data();
  over_column_blocks(w.cols, 1, [&](int c0, int c1) {
    for (int r = 0; r < w.rows; r++) {
      const float* row = w.data + size_t(r) * w.cols;
      for (int c = c0; c < c1; c++) out[c] = js_max(out[c], std::fabs(row[c]));
    }
  });
  return info.Env().Undefined();
}

Napi::Value AwqWeightMeanInto(const Napi::CallbackInfo& info) {
  const MatrixArg w = matrix_arg(info, 0, "awqWeightMeanInto");
  const int group = int_arg(info, 3, "awqWeightMeanInto", "group");
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[4].As<Napi::Float64Array>().ElementLength() != size_t(w.cols))
    throw Napi::TypeError::New(info.Env(), "awqWeightMeanInto: sum must be a Float64Array of cols values");
  if (group <= 0 || w.cols % group != 0) throw Napi::RangeError::New(info.Env(), "awqWeightMeanInto: cols must be a multiple of group");
  double* sum = info[4].As<Napi::Float64Array>().Data();
  over_column_blocks(w.cols, group, [&](int c0, int c1) {
    for (int r = 0; r < w.rows; r++) {
      const float* row = w.data + size_t(r) * w.cols;
      for (int g = c0; g < c1; g += group) {
        float amax = 0;
        for (int i = 0; i < group; i++) amax = js_max(amax, std::fabs(row[g + i]));
        const double inv = 1.0 / (double(amax) + 1e-6);
        for (int i = 0; i < group; i++) sum[g + i] += double(std::fabs(row[g + i])) * inv;
      }
    }
  });
  return info.Env().Undefined();
}

Napi::Value ScaleColumns(const Napi::CallbackInfo& info) {
  const MatrixArg w = matrix_arg(info, 0, "scaleColumns");
  Napi::Float32Array s = f32_arg(info, 3, "scaleColumns", "s");
  if (s.ElementLength() != size_t(w.cols)) throw Napi::RangeError::New(info.Env(), "scaleColumns: s must hold cols values");
  const float* sp = s.Data();
  quant_pool().parallel_for(w.rows, [&](int r, int) {
    float* row = w.data + size_t(r) * w.cols;
    for (int c = 0; c < w.cols; c++) row[c] *= sp[c];  // float product: what fround(a * b) gives
  });
  return info.Env().Undefined();
}

Napi::Value DivideRows(const Napi::CallbackInfo& info) {
  const MatrixArg w = matrix_arg(info, 0, "divideRows");
  Napi::Float32Array s = f32_arg(info, 3, "divideRows", "s");
  const bool tied = !(info[4].IsNull() || info[4].IsUndefined());
  if (tied && (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
               info[4].As<Napi::Int32Array>().ElementLength() != s.ElementLength()))
    throw Napi::TypeError::New(info.Env(), "divideRows: rowOf must be an Int32Array as long as s");
  const int32_t* row_of = tied ? info[4].As<Napi::Int32Array>().Data() : nullptr;
  // The first channel naming a row divides it (tied channels share one factor).
  std::vector<int> by(w.rows, -1);
  for (size_t c = 0; c < s.ElementLength(); c++) {
    const int64_t r = row_of ? row_of[c] : int64_t(c);
    if (r < 0 || r >= w.rows) throw Napi::RangeError::New(info.Env(), "divideRows: a channel names a row outside w");
    if (by[r] < 0) by[r] = int(c);
  }
  const float* sp = s.Data();
  quant_pool().parallel_for(w.rows, [&](int r, int) {
    if (by[r] < 0) return;
    float* row = w.data + size_t(r) * w.cols;
    const float d = sp[by[r]];
    for (int c = 0; c < w.cols; c++) row[c] /= d;  // float quotient: fround of the double one
  });
  return info.Env().Undefined();
}

Napi::Value QuantizeInt8Rows(const Napi::CallbackInfo& info) {
  const MatrixArg w = matrix_arg(info, 0, "quantizeInt8Rows");
  Napi::Int8Array q = Napi::Int8Array::New(info.Env(), size_t(w.rows) * w.cols);
  Napi::Float32Array scales = Napi::Float32Array::New(info.Env(), w.rows);
  int8_t* qp = q.Data();
  float* sp = scales.Data();
  quant_pool().parallel_for(w.rows, [&](int r, int) {
    const float* row = w.data + size_t(r) * w.cols;
    int8_t* out = qp + size_t(r) * w.cols;
    float amax = 0;
    for (int c = 0; c < w.cols; c++) amax = js_max(amax, std::fabs(row[c]));
    const float scale = float(double(amax) / 127.0);
    sp[r] = scale;
    if (scale == 0) {
      std::fill(out, out + w.cols, int8_t(0));
      return;
    }
    for (int c = 0; c < w.cols; c++) {
      const double v = std::nearbyint(double(row[c]) / double(scale));  // half to even, as roundEven
      out[c] = std::isnan(v) ? 0 : int8_t(std::clamp(v, -127.0, 127.0));  // an Int8Array stores NaN as 0
    }
  });
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("q", q);
  o.Set("scales", scales);
  return o;
}

/**
 * numeric.ts f32ToE4m3 on a double: the nearest of e4m3fn's finite values, ties to the even code,
 * saturating at 448. The TypeScript searches a table; here the code comes from the double's bits:
 * its exponent and its mantissa's top 3 bits, rounded to nearest even by adding just under half a
 * step plus the kept part's lowest bit (a carry steps the exponent, as a rounding up to the next
 * power of two should); subnormals (below 2^-6, steps of 2^-9) by rounding a * 512 through 2^52.
 * Bit operations instead of frexp / ldexp / nearbyint: several times faster per weight, the same
 * codes (every code, every midpoint between two codes: test/unit/quant-native-kernels.test.ts).
 */
uint8_t to_e4m3(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, 8);
  const uint8_t sign = uint8_t((bits >> 56) & 0x80);
  bits &= ~(uint64_t(1) << 63);                                 // |x|
  if (bits > 0x7ff0000000000000ull) return 0x7f;                // NaN
  if (bits >= 0x407c000000000000ull) return sign | 0x7e;        // 448 or more (infinity too)
  if (bits < 0x3f90000000000000ull) {                           // below 2^-6
    double a;
    std::memcpy(&a, &bits, 8);
    return sign | uint8_t((a * 512.0 + 0x1p52) - 0x1p52);       // a * 512 < 8: exact, then ties to even
  }
  const uint64_t kept = (bits + ((uint64_t(1) << 48) - 1) + ((bits >> 49) & 1)) >> 49;  // exponent, 3 mantissa bits
  return sign | uint8_t(kept - (uint64_t(1023 - 7) << 3));      // rebiased: below 448, never the NaN code
}

Napi::Value QuantizeE4m3(const Napi::CallbackInfo& info) {
  Napi::Float32Array values = f32_arg(info, 0, "quantizeE4m3", "values");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "quantizeE4m3: scale must be a number");
  const double scale = info[1].As<Napi::Number>().DoubleValue();
  const size_t n = values.ElementLength();
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), n);
  const float* vp = values.Data();
  uint8_t* op = out.Data();
  constexpr size_t kChunk = size_t(1) << 16;
  quant_pool().parallel_for(int((n + kChunk - 1) / kChunk), [&](int c, int) {
    for (size_t i = size_t(c) * kChunk, end = std::min(n, i + kChunk); i < end; i++) op[i] = to_e4m3(double(vp[i]) / scale);
  });
  return out;
}

// src/quant/expert-stats.ts rowDots: out[r, o] = sum over c in order of x[r, c] * w[o, c] in double,
// as JavaScript sums (each product of two floats exact in a double, so fused or not the same).
Napi::Value RowDots(const Napi::CallbackInfo& info) {
  const MatrixArg x = matrix_arg(info, 0, "rowDots");
  const MatrixArg w = matrix_arg(info, 3, "rowDots");
  if (x.cols != w.cols) throw Napi::RangeError::New(info.Env(), "rowDots: x and w must have as many columns");
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), size_t(x.rows) * size_t(w.rows));
  double* op = out.Data();
  quant_pool().parallel_for(w.rows, [&](int o, int) {
    const float* wr = w.data + size_t(o) * w.cols;
    for (int r = 0; r < x.rows; r++) {
      const float* xr = x.data + size_t(r) * x.cols;
      double acc = 0;
      for (int c = 0; c < x.cols; c++) acc += double(xr[c]) * double(wr[c]);
      op[size_t(r) * w.rows + size_t(o)] = acc;
    }
  });
  return out;
}

Napi::Value DecodeBf16(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), "decodeBf16: bytes must be a Uint8Array");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  if (bytes.ByteLength() % 2 != 0) throw Napi::RangeError::New(info.Env(), "decodeBf16: an odd number of bytes is not bf16");
  const size_t n = bytes.ByteLength() / 2;
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
  const uint8_t* in = bytes.Data();  // a file read's buffer: not always 2-byte aligned
  uint32_t* op = reinterpret_cast<uint32_t*>(out.Data());
  constexpr size_t kChunk = size_t(1) << 18;
  quant_pool().parallel_for(int((n + kChunk - 1) / kChunk), [&](int c, int) {
    for (size_t i = size_t(c) * kChunk, end = std::min(n, i + kChunk); i < end; i++) {
      uint16_t h;
      std::memcpy(&h, in + 2 * i, 2);
      op[i] = uint32_t(h) << 16;  // bf16 is fp32's upper half: NaN payloads kept, as the TypeScript keeps them
    }
  });
  return out;
}

}  // namespace

void RegisterQuantPasses(Napi::Env env, Napi::Object exports) {
  exports.Set("absMax", Napi::Function::New(env, AbsMax, "absMax"));
  exports.Set("columnAbsMaxInto", Napi::Function::New(env, ColumnAbsMaxInto, "columnAbsMaxInto"));
  exports.Set("awqWeightMeanInto", Napi::Function::New(env, AwqWeightMeanInto, "awqWeightMeanInto"));
  exports.Set("scaleColumns", Napi::Function::New(env, ScaleColumns, "scaleColumns"));
  exports.Set("divideRows", Napi::Function::New(env, DivideRows, "divideRows"));
  exports.Set("quantizeInt8Rows", Napi::Function::New(env, QuantizeInt8Rows, "quantizeInt8Rows"));
  exports.Set("quantizeE4m3", Napi::Function::New(env, QuantizeE4m3, "quantizeE4m3"));
  exports.Set("decodeBf16", Napi::Function::New(env, DecodeBf16, "decodeBf16"));
  exports.Set("rowDots", Napi::Function::New(env, RowDots, "rowDots"));
}

}  // namespace grpst::addon
