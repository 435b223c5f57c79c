// The NCCL group of a tensor-parallel engine: one process per GPU, joined with NCCL's unique-id
// bootstrap (rank 0 makes the id; src/daemon/tp-launch.ts hands it to the other ranks in their
// environment). Built where nccl.h and libnccl are found (native/CMakeLists.txt); elsewhere every
// function here throws an Error that says so.
#pragma once
#include <memory>
#include <string>

#include "grpst/collective.h"

namespace grpst {

bool built_with_nccl();
/** A new group's id (ncclGetUniqueId), as hex. */
std::string nccl_unique_id();
/**
 * Joins group `id_hex` as `rank` of `size` on CUDA device `device`; blocks until every rank has
 * joined. NVLink SHARP multicast (NCCL_NVLS_ENABLE) is turned off before NCCL reads its settings.
 */
std::unique_ptr<Collective> make_nccl_collective(const std::string& id_hex, int rank, int size, int device);

}  // namespace grpst
