/*
 * Owns: the guest side of `npm run bench -- disk`'s random-read figure: COUNT reads of 4 KiB with O_DIRECT
 * from DEVICE at 4 KiB-aligned offsets below SPAN_MIB MiB, chosen by a fixed linear congruential sequence
 * (the same offsets on every emulator), one at a time (queue depth 1); prints "reads=N bytes=M" and exits
 * 0, or a message and 1. Busybox dd cannot do this: a dd per read would measure process start-up.
 * Must not: write the device, or depend on anything but the C library (bench/disk.ts builds it with gcc and
 * guest/addon-initramfs.sh adds it to the bundled initramfs for one run).
 * Spec: open(2) O_DIRECT (buffer, offset and length aligned to the logical block size), pread(2).
 * Usage: guest-randread DEVICE SPAN_MIB COUNT
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: guest-randread DEVICE SPAN_MIB COUNT\n");
    return 1;
  }
  long span_blocks = atol(argv[2]) * 256; /* 4 KiB blocks in the span */
  long count = atol(argv[3]);
  if (span_blocks <= 0 || count <= 0) {
    fprintf(stderr, "guest-randread: SPAN_MIB and COUNT must be positive\n");
    return 1;
  }
  int fd = open(argv[1], O_RDONLY | O_DIRECT);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  void *buf;
  if (posix_memalign(&buf, 4096, 4096) != 0) {
    fprintf(stderr, "guest-randread: no memory\n");
    return 1;
  }
  unsigned long long x = 12345;
  long long bytes = 0;
  for (long i = 0; i < count; i++) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    long block = (long)((x >> 33) % (unsigned long long)span_blocks);
    ssize_t n = pread(fd, buf, 4096, (off_t)block * 4096);
    if (n != 4096) {
      perror("guest-randread: pread");
      return 1;
    }
    bytes += n;
  }
  printf("reads=%ld bytes=%lld\n", count, bytes);
  return 0;
}
