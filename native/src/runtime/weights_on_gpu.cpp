#include "runtime/weights_on_gpu.h"

namespace grpst {

WeightsLoad for_gpu_upload(WeightsLoad asked) {
  asked.lock = false;
  return asked;
}

WeightsReport released_after_upload(WeightsReport report, const WeightsLoad& asked) {
  report.host_copy_released = true;
  report.lock_asked = asked.lock;
  report.locked = false;
  report.lock_warning.clear();
  return report;
}

}  // namespace grpst
