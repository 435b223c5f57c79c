// The host copy of the weights behind a CUDA runner: read (or mapped) for the upload alone and
// released once the weights are on the GPU (runtime/cuda_select.cpp). It is never locked:
// use_mlock keeps weights from being paged out while they serve, and these pages neither serve nor
// outlive the load (GPU memory is never paged out), so a lock would only cost time, and a refusal
// would warn about pages gone seconds later.
#pragma once
#include "grpst/tensor_store.h"

namespace grpst {

/** How to load weights a CUDA runner uploads: as `asked`, without the lock. */
WeightsLoad for_gpu_upload(WeightsLoad asked);

/** A store's report once its weights were uploaded and its host copy released; `asked`: the load as the conf asked it. */
WeightsReport released_after_upload(WeightsReport report, const WeightsLoad& asked);

}  // namespace grpst
