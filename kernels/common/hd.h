/* kernels/common/hd.h — DECO_KERNEL_HD, the qualifier of the scalar helpers
 * that the C references and the CUDA kernels share (paged.h, float_key.h,
 * the acceptance and top-k keys): host and device functions, inlined, under
 * nvcc; static inline functions in plain C. The public deco/philox.h keeps
 * its own DECO_HD for its inline functions.
 */
#ifndef DECO_KERNELS_HD_H
#define DECO_KERNELS_HD_H

#if defined(__CUDACC__)
#define DECO_KERNEL_HD __host__ __device__ __forceinline__
#else
#define DECO_KERNEL_HD static inline
#endif

#endif
