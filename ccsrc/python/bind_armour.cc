// Secure-aggregation kernel bindings (filled in by the secure-aggregation work).
#include <pybind11/pybind11.h>

#include "python/bind.h"

namespace fl::py_bind {
void BindArmour(pybind11::module_& m) { (void)m; }
}  // namespace fl::py_bind
