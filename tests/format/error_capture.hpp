// SPDX-License-Identifier: MIT
// The qforge::error a callable throws, for tests that check its kind and message; fails the test
// case when nothing (or something else) is thrown.
#pragma once
#include <catch2/catch.hpp>
#include <stdexcept>

#include "qforge/core/error.hpp"

namespace qforge::test {

template <class F>
error error_from(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e;
  }
  FAIL("expected a qforge::error");
  throw std::logic_error("unreachable");
}

}  // namespace qforge::test
