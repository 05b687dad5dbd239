// Hardware CRC-32C (SSE4.2 crc32 instruction) with a cpuid runtime check. No global compiler
// flags: only the functions below are compiled for SSE4.2, and callers use them only after
// herald_crc32c_hw_available() said the CPU supports it. Other architectures report 0 and the
// Swift table implementation is used.
#include "ccrc32c.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <nmmintrin.h>

int herald_crc32c_hw_available(void) {
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t herald_crc32c_hw_update(uint32_t crc, const void *bytes, size_t count) {
    const unsigned char *p = (const unsigned char *)bytes;
    uint64_t c = crc;
    // One dependency chain, 8 bytes per crc32q (latency 3 cycles: ~2.7 bytes/cycle, about
    // 10x the table version). Unaligned loads go through memcpy.
    while (count >= 32) {
        uint64_t a, b, d, e;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        memcpy(&d, p + 16, 8);
        memcpy(&e, p + 24, 8);
        c = _mm_crc32_u64(c, a);
        c = _mm_crc32_u64(c, b);
        c = _mm_crc32_u64(c, d);
        c = _mm_crc32_u64(c, e);
        p += 32;
        count -= 32;
    }
    while (count >= 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        c = _mm_crc32_u64(c, a);
        p += 8;
        count -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (count > 0) {
        c32 = _mm_crc32_u8(c32, *p);
        p++;
        count--;
    }
    return c32;
}

#else

int herald_crc32c_hw_available(void) { return 0; }

uint32_t herald_crc32c_hw_update(uint32_t crc, const void *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return crc;
}

#endif
