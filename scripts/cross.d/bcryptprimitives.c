/* A stand-in bcryptprimitives.dll for running Veil's Windows binaries under
 * Wine 8, which does not ship this DLL. Rust's std (1.78 and later) takes its
 * random bytes from ProcessPrng here; real Windows 10+ has it. We forward to
 * RtlGenRandom (exported by advapi32 as SystemFunction036), which Wine has.
 * Built by `scripts/cross` with mingw into the cross target dir; never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a 32-bit length; ProcessPrng a pointer-sized one. */
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
