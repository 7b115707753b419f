/* kernels/common/probe.h — whether this build's CUDA kernels load on the
 * current device. A fatbin holds code for the architectures it was built
 * for (DECO_CUDA_ARCHS): an sm_90a-only build has nothing an A100 or an
 * RTX 4090 runs, and its kernels would fail one by one at their first
 * launch; the context asks once, at creation, instead.
 */
#ifndef DECO_KERNELS_PROBE_H
#define DECO_KERNELS_PROBE_H

#ifdef __cplusplus
extern "C" {
#endif

/* 0 (cudaSuccess) when a kernel of this build loads on the current device
 * (its SASS, or PTX the driver compiles); otherwise the cudaError_t of
 * loading it, the error left cleared (no kernel image for the device, PTX
 * newer than the driver, ...). */
int deco_kernels_probe(void);

#ifdef __cplusplus
}
#endif
#endif
