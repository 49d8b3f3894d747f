// SPDX-License-Identifier: MIT
// Every quant family qforge encodes, as one type list: backend/dispatch.hpp builds each backend's
// kernel table from it and quant/encode.hpp validates against it. A new family is one include and one
// entry here (its folder provides a `family` struct like q8_0/family.hpp).
#pragma once
#include "qforge/quant/q8_0/family.hpp"

namespace qforge::quant {

template <class... Families>
struct family_list {};

using all_families = family_list<q8_0::family>;

}  // namespace qforge::quant
