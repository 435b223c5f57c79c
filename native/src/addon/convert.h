// JS <-> C++ conversions for the addon. Field names match src/engine/native.ts (the typed
// mirror of this addon); every malformed field becomes a TypeError naming it.
#pragma once
#include <napi.h>

#include <vector>

#include "grpst/engine.h"
#include "grpst/model_config.h"
#include "grpst/request.h"
#include "grpst/tensor_store.h"

namespace grpst::addon {

ModelConfig model_config_from_js(const Napi::Object& o);
std::vector<TensorDesc> tensor_table_from_js(const Napi::Array& a);
EngineOptions engine_options_from_js(const Napi::Object& o);
/** options.kvCacheScales ([k_scale, v_scale] per layer) flattened; empty when absent. */
std::vector<float> kv_scales_from_js(const Napi::Object& o);
/** options.useMmap / options.useMlock (default: mapped, not locked); the cancel flag is the caller's. */
WeightsLoad weights_load_from_js(const Napi::Object& o);
/** NativeEngineInfo.weights: {mapped, lockAsked, locked, bytes, lockWarning?, hostCopyReleased}. */
Napi::Object weights_report_to_js(Napi::Env env, const WeightsReport& r);
/** `constraint` is resolved by the caller (it is an addon object). */
Request request_from_js(const Napi::Value& id, const Napi::Value& tokens, const Napi::Object& params);

Napi::Object events_to_js(Napi::Env env, const std::vector<SeqEvent>& events);
Napi::Object stats_to_js(Napi::Env env, const EngineStats& s);
Napi::Object info_to_js(Napi::Env env, const EngineInfo& i);

// Helpers shared by the addon files.
double get_number(const Napi::Object& o, const char* key, double fallback);
std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback);
bool get_bool(const Napi::Object& o, const char* key, bool fallback);

}  // namespace grpst::addon
