#ifndef HERALD_CCRC32C_H
#define HERALD_CCRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU has the SSE4.2 crc32 instruction (checked once with cpuid), else 0.
int herald_crc32c_hw_available(void);

/// Feeds `count` bytes at `bytes` into the running (not inverted) CRC-32C state `crc` using
/// the SSE4.2 crc32 instruction. Call only when herald_crc32c_hw_available() returned 1.
uint32_t herald_crc32c_hw_update(uint32_t crc, const void *bytes, size_t count);

#ifdef __cplusplus
}
#endif

#endif
