// SPDX-License-Identifier: MIT
// Every quant family qforge encodes, as one type list: backend/dispatch.hpp builds each backend's
// kernel table from it and quant/encode.hpp validates against it. A new family is one include and one
// entry here (its folder provides a `family` struct like q8_0/family.hpp).
#pragma once
#include "qforge/quant/q2_k/family.hpp"
#include "qforge/quant/q3_k/family.hpp"
#include "qforge/quant/q4_k/family.hpp"
#include "qforge/quant/q5_k/family.hpp"
#include "qforge/quant/q6_k/family.hpp"
#include "qforge/quant/q8_0/family.hpp"
#include "qforge/quant/q4_0/family.hpp"
#include "qforge/quant/q4_1/family.hpp"
#include "qforge/quant/q5_0/family.hpp"
#include "qforge/quant/q5_1/family.hpp"
#include "qforge/quant/iq4_nl/family.hpp"

namespace qforge::quant {

template <class... Families>
struct family_list {};

using all_families = family_list<q8_0::family, q2_k::family, q3_k::family, q4_k::family,
                                    q5_k::family, q6_k::family, q4_0::family,
                                    q4_1::family, q5_0::family, q5_1::family, iq4_nl::family>;

}  // namespace qforge::quant
