// SPDX-License-Identifier: MIT
// Thread-block-cluster helpers (sm_90) for the engine's CUDA kernels (attention_split.cuh): a
// cluster-wide barrier, the CTA's rank, loads from another CTA's shared memory (distributed shared
// memory), and a launch with a cluster dimension. Partial results of the CTAs of a cluster meet on
// chip, read in a fixed order: no global workspace, no atomics, no second kernel, the same bits on
// every run. The device functions compile to nothing below sm_90; callers launch these paths only
// where has_sm90() holds.
#pragma once
#include "qforge/engine/cuda/common.cuh"

namespace qforge::engine::cuda::detail {

__device__ __forceinline__ std::uint32_t smem_addr(const void* p) noexcept {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// Cluster-wide barrier with release / acquire semantics on shared memory (every thread of every
// CTA of the cluster must call it).
__device__ __forceinline__ void cluster_sync() noexcept {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ unsigned cluster_rank() noexcept {
  unsigned r = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
#endif
  return r;
}

// The float at the same shared-memory offset as p in the CTA of the cluster with rank `rank`.
__device__ __forceinline__ float ld_cluster(const float* p, unsigned rank) noexcept {
  float v = 0.0f;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  std::uint32_t remote = 0;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem_addr(p)), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
#endif
  return v;
}

// Whether the current device runs the sm_90 paths (checked once per process).
inline bool has_sm90() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    QFORGE_CUDA_CHECK(cudaGetDevice(&dev));
    QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    return major >= 9;
  }();
  return yes;
}

// launch() of common.cuh with a cluster of `cluster` CTAs along grid dimension `axis` (0 x, 1 y).
template <class... Params, class... Args>
void launch_cluster(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
                    cudaStream_t stream, bool pdl, unsigned cluster, int axis, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = axis == 0 ? cluster : 1;
  attr[0].val.clusterDim.y = axis == 1 ? cluster : 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  QFORGE_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace qforge::engine::cuda::detail
