// The threads of the build's quantization tools (quant_tools.cpp, quant_passes.cpp): one pool of
// every core, used from the JavaScript thread only, one call at a time.
#pragma once
#include "grpst/thread_pool.h"

namespace grpst::addon {

ThreadPool& quant_pool();

}  // namespace grpst::addon
