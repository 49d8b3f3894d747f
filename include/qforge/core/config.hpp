// SPDX-License-Identifier: MIT
// Portability macros shared by host and CUDA code. Headers that CUDA translation units include use
// QFORGE_HD so one definition (block layouts, fp16 conversion) serves both compilers.
#pragma once

#if defined(__CUDACC__)
#define QFORGE_HD __host__ __device__
#define QFORGE_DEVICE __device__
#else
#define QFORGE_HD
#define QFORGE_DEVICE
#endif
