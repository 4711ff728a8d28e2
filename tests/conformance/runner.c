/*
 * Owns: the native half of the conformance test — executes batches of single x86-64 instructions on the host
 * processor and reports the architectural outcome. Compiled by conformance.test.ts with gcc into a temp dir.
 * Must not: be linked into the project or run anything but the case bytes it is given (no shell, no files).
 * Spec: Intel SDM Vol. 1 3.4 (GPRs, RFLAGS), Vol. 3A 6.3/6.15 (exception vectors and error codes); Linux
 * x86-64 signal ABI (ucontext gregs REG_TRAPNO/REG_ERR/REG_CR2, sigaltstack).
 *
 * Protocol (little-endian): stdin = "VCF1" u32 count, then count records of 460 bytes:
 *   u8 len, u8 pad, u16 codeOff, u32 memSeed, u8 code[16], u64 regs[16], u64 rflags,
 *   2 x { u16 off, u16 len, u8 bytes[16] } (memory pokes applied after the seeded fill),
 *   u8 xmm[16][16], u32 mxcsr.
 * stdout = "VCR1" u32 count, then per case: u64 regs[16], u64 rip, u64 rflags, u64 cr2, i32 trapno, u32 err,
 *   u8 xmm[16][16], u32 mxcsr, u32 ndiff, then ndiff x { u16 off, u8 value, u8 pad } — data bytes that
 *   differ from the initial image.
 *
 * Every case ends in a signal: the code page is filled with HLT (F4) around the instruction, so a completed
 * instruction is followed by the #GP(0) of a ring-3 HLT at the next byte (or at a branch target), and a
 * faulting one raises its own exception. (INT3 filler was tried first: under this host's hypervisor an INT3
 * occasionally arrived as #UD, so the filler must raise a plain fault, not a software exception.) The handler copies the interrupted context (which includes the hardware vector, error code
 * and CR2 as the kernel recorded them) and siglongjmps back. Any RSP value is allowed: the handler runs on
 * an alternate stack.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define CODE_BASE 0x10000000UL
#define DATA_BASE 0x20000000UL
#define DATA_SIZE 8192
#define REC_IN 460
#define MAX_DIFF 8192

struct regs_block {
  uint64_t r[16];
  uint64_t rflags;
  uint32_t mxcsr, pad;
  uint8_t xmm[16][16];
};

static struct regs_block in_regs;
static volatile uint64_t out_regs[16];
static volatile uint64_t out_rip, out_rflags, out_cr2;
static volatile int32_t out_trapno;
static uint8_t out_xmm[16][16];
static volatile uint32_t out_mxcsr;
static volatile uint32_t out_err;
static volatile int in_case;
static sigjmp_buf jb;
uint64_t case_entry;

void enter_case(struct regs_block *b, uint64_t entry);
__asm__(".text\n"
        ".globl enter_case\n"
        "enter_case:\n"
        "  movq %rsi, case_entry(%rip)\n"
        "  ldmxcsr 136(%rdi)\n"
        "  movdqu 144(%rdi), %xmm0\n"
        "  movdqu 160(%rdi), %xmm1\n"
        "  movdqu 176(%rdi), %xmm2\n"
        "  movdqu 192(%rdi), %xmm3\n"
        "  movdqu 208(%rdi), %xmm4\n"
        "  movdqu 224(%rdi), %xmm5\n"
        "  movdqu 240(%rdi), %xmm6\n"
        "  movdqu 256(%rdi), %xmm7\n"
        "  movdqu 272(%rdi), %xmm8\n"
        "  movdqu 288(%rdi), %xmm9\n"
        "  movdqu 304(%rdi), %xmm10\n"
        "  movdqu 320(%rdi), %xmm11\n"
        "  movdqu 336(%rdi), %xmm12\n"
        "  movdqu 352(%rdi), %xmm13\n"
        "  movdqu 368(%rdi), %xmm14\n"
        "  movdqu 384(%rdi), %xmm15\n"
        "  pushq 128(%rdi)\n"
        "  popfq\n"
        "  movq 0(%rdi), %rax\n"
        "  movq 8(%rdi), %rcx\n"
        "  movq 16(%rdi), %rdx\n"
        "  movq 24(%rdi), %rbx\n"
        "  movq 32(%rdi), %rsp\n"
        "  movq 40(%rdi), %rbp\n"
        "  movq 48(%rdi), %rsi\n"
        "  movq 64(%rdi), %r8\n"
        "  movq 72(%rdi), %r9\n"
        "  movq 80(%rdi), %r10\n"
        "  movq 88(%rdi), %r11\n"
        "  movq 96(%rdi), %r12\n"
        "  movq 104(%rdi), %r13\n"
        "  movq 112(%rdi), %r14\n"
        "  movq 120(%rdi), %r15\n"
        "  movq 56(%rdi), %rdi\n"
        "  jmp *case_entry(%rip)\n");

static void on_signal(int sig, siginfo_t *si, void *ucv) {
  /* The case may have left RFLAGS.AC set (the kernel does not clear it): clear it before any C code runs
     unaligned accesses. */
  __asm__ volatile("pushfq\n andq $~0x40000, (%%rsp)\n popfq" ::: "memory", "cc");
  (void)si;
  if (!in_case) {
    static const char msg[] = "runner: signal outside a case\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(100 + sig);
  }
  ucontext_t *uc = (ucontext_t *)ucv;
  greg_t *g = uc->uc_mcontext.gregs;
  out_regs[0] = g[REG_RAX];
  out_regs[1] = g[REG_RCX];
  out_regs[2] = g[REG_RDX];
  out_regs[3] = g[REG_RBX];
  out_regs[4] = g[REG_RSP];
  out_regs[5] = g[REG_RBP];
  out_regs[6] = g[REG_RSI];
  out_regs[7] = g[REG_RDI];
  out_regs[8] = g[REG_R8];
  out_regs[9] = g[REG_R9];
  out_regs[10] = g[REG_R10];
  out_regs[11] = g[REG_R11];
  out_regs[12] = g[REG_R12];
  out_regs[13] = g[REG_R13];
  out_regs[14] = g[REG_R14];
  out_regs[15] = g[REG_R15];
  out_rip = g[REG_RIP];
  out_rflags = g[REG_EFL];
  out_cr2 = g[REG_CR2];
  out_trapno = (int32_t)g[REG_TRAPNO];
  out_err = (uint32_t)g[REG_ERR];
  memcpy(out_xmm, uc->uc_mcontext.fpregs->_xmm, sizeof out_xmm);
  out_mxcsr = uc->uc_mcontext.fpregs->mxcsr;
  in_case = 0;
  siglongjmp(jb, 1);
}

static void fill_data(uint8_t *p, uint32_t seed) {
  uint32_t x = seed | 1;
  for (int i = 0; i < DATA_SIZE; i += 4) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
    p[i + 1] = (uint8_t)(x >> 8);
    p[i + 2] = (uint8_t)(x >> 16);
    p[i + 3] = (uint8_t)(x >> 24);
  }
}

static void apply_pokes(uint8_t *p, const uint8_t *rec) {
  for (int k = 0; k < 2; k++) {
    const uint8_t *q = rec + 160 + k * 20;
    uint16_t off, len;
    memcpy(&off, q, 2);
    memcpy(&len, q + 2, 2);
    if (len > 16 || (uint32_t)off + len > DATA_SIZE) continue;
    memcpy(p + off, q + 4, len);
  }
}

static void *read_all(size_t *n) {
  size_t cap = 1 << 20, len = 0;
  uint8_t *buf = malloc(cap);
  for (;;) {
    if (len == cap) {
      buf = realloc(buf, cap *= 2);
      if (buf == NULL) exit(2);
    }
    size_t r = fread(buf + len, 1, cap - len, stdin);
    if (r == 0) break;
    len += r;
  }
  *n = len;
  return buf;
}

/* Kept out of line so no local of main() lives across the sigsetjmp/siglongjmp pair. */
static __attribute__((noinline)) void run_one(uint64_t entry) {
  if (sigsetjmp(jb, 1) == 0) {
    in_case = 1;
    enter_case(&in_regs, entry);
    __builtin_unreachable();
  }
}

static void put(const void *p, size_t n) {
  if (fwrite(p, 1, n, stdout) != n) _exit(3);
}

int main(void) {
  size_t n;
  uint8_t *in = read_all(&n);
  uint32_t count;
  if (n < 8 || memcmp(in, "VCF1", 4) != 0) {
    fprintf(stderr, "runner: bad batch header\n");
    return 2;
  }
  memcpy(&count, in + 4, 4);
  if (n != 8 + (size_t)count * REC_IN) {
    fprintf(stderr, "runner: batch size mismatch\n");
    return 2;
  }
  uint8_t *code = mmap((void *)CODE_BASE, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  uint8_t *data = mmap((void *)DATA_BASE, DATA_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (code != (uint8_t *)CODE_BASE || data != (uint8_t *)DATA_BASE) {
    fprintf(stderr, "runner: cannot map the fixed code/data pages\n");
    return 2;
  }
  static uint8_t altstack[1 << 16];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  alarm(120);

  static uint8_t initial[DATA_SIZE];
  static uint8_t diffbuf[MAX_DIFF * 4];
  put("VCR1", 4);
  put(&count, 4);
  for (uint32_t c = 0; c < count; c++) {
    const uint8_t *rec = in + 8 + (size_t)c * REC_IN;
    uint8_t len = rec[0];
    uint16_t off;
    uint32_t seed;
    memcpy(&off, rec + 2, 2);
    memcpy(&seed, rec + 4, 4);
    if (len > 16 || off >= 4096) {
      fprintf(stderr, "runner: bad case %u\n", c);
      return 2;
    }
    memset(code, 0xf4, 4096);
    /* An instruction placed to straddle the page end loses its tail: the next page is unmapped. */
    memcpy(code + off, rec + 8, off + len > 4096 ? 4096u - off : len);
    fill_data(initial, seed);
    apply_pokes(initial, rec);
    memcpy(data, initial, DATA_SIZE);
    memcpy(in_regs.r, rec + 24, 128);
    memcpy(&in_regs.rflags, rec + 152, 8);
    memcpy(in_regs.xmm, rec + 200, 256);
    memcpy(&in_regs.mxcsr, rec + 456, 4);
    /* Serialize after rewriting the code page (SDM Vol. 3A 8.1.3, cross-modifying code: the process may
       have moved to another processor since the last case ran). */
    {
      uint32_t a = 0, b, cc = 0, d;
      __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(cc), "=d"(d)::"memory");
    }
    run_one(CODE_BASE + off);
    uint64_t fixed[19];
    for (int i = 0; i < 16; i++) fixed[i] = out_regs[i];
    fixed[16] = out_rip;
    fixed[17] = out_rflags;
    fixed[18] = out_cr2;
    put(fixed, sizeof fixed);
    int32_t t = out_trapno;
    uint32_t e = out_err;
    put(&t, 4);
    put(&e, 4);
    put(out_xmm, sizeof out_xmm);
    uint32_t mx = out_mxcsr;
    put(&mx, 4);
    uint32_t nd = 0;
    for (int i = 0; i < DATA_SIZE; i++) {
      if (data[i] != initial[i] && nd < MAX_DIFF) {
        diffbuf[nd * 4] = (uint8_t)i;
        diffbuf[nd * 4 + 1] = (uint8_t)(i >> 8);
        diffbuf[nd * 4 + 2] = data[i];
        diffbuf[nd * 4 + 3] = 0;
        nd++;
      }
    }
    put(&nd, 4);
    put(diffbuf, (size_t)nd * 4);
  }
  fflush(stdout);
  return 0;
}
