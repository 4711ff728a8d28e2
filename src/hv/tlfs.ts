// Owns: the numbers of the Hyper-V guest interface that the hypervisor modules share: synthetic MSR
// indexes, CPUID leaves, partition privilege bits, feature and recommendation bits, hypercall codes and
// HV_STATUS values, SynIC/timer register bit fields and message types.
// Must not: contain behaviour; every value here is quoted from the spec, nothing is invented.
// Spec: Hyper-V TLFS (MicrosoftDocs/Virtualization-Documentation, tlfs/*.md): feature-discovery.md
// (CPUID 0x40000000-0x4000000A, privilege mask), hypercall-interface.md (control/result words, status codes),
// inter-partition-communication.md (SynIC MSRs, message slots), timers.md (reference counter, TSC page,
// STIMER config), hypercalls/*.md (call codes); the checklist ../shared/research/hyperv-linux-guest-checklist.md
// section 1-4 lists which of them Linux 6.1 uses.

// ---- synthetic MSRs (TLFS appendix "Hypervisor Synthetic MSRs") ----
export const MSR_GUEST_OS_ID = 0x40000000;
export const MSR_HYPERCALL = 0x40000001;
export const MSR_VP_INDEX = 0x40000002;
export const MSR_VP_RUNTIME = 0x40000010;
export const MSR_TIME_REF_COUNT = 0x40000020;
export const MSR_REFERENCE_TSC = 0x40000021;
export const MSR_TSC_FREQUENCY = 0x40000022;
export const MSR_APIC_FREQUENCY = 0x40000023;
export const MSR_VP_ASSIST_PAGE = 0x40000073;
export const MSR_SCONTROL = 0x40000080;
export const MSR_SVERSION = 0x40000081;
export const MSR_SIEFP = 0x40000082;
export const MSR_SIMP = 0x40000083;
export const MSR_EOM = 0x40000084;
export const MSR_SINT0 = 0x40000090;
export const MSR_SINT15 = 0x4000009f;
export const MSR_STIMER0_CONFIG = 0x400000b0;
export const MSR_STIMER3_COUNT = 0x400000b7;
export const MSR_CRASH_P0 = 0x40000100;
export const MSR_CRASH_P4 = 0x40000104;
export const MSR_CRASH_CTL = 0x40000105;
/** First and last index of the synthetic MSR range the hypervisor claims (anything else is not ours). */
export const MSR_SYNTHETIC_FIRST = 0x40000000;
export const MSR_SYNTHETIC_LAST = 0x400001ff;

// ---- CPUID (feature-discovery.md) ----
export const CPUID_VENDOR = 0x40000000;
export const CPUID_INTERFACE = 0x40000001;
export const CPUID_VERSION = 0x40000002;
export const CPUID_FEATURES = 0x40000003;
export const CPUID_RECOMMENDATIONS = 0x40000004;
export const CPUID_LIMITS = 0x40000005;
export const CPUID_MAX_LEAF = 0x4000000a;
/** "Hv#1" in EAX of 0x40000001. */
export const INTERFACE_HV1 = 0x31237648;

// ---- partition privilege mask, low dword (0x40000003.EAX) ----
export const PRIV_VP_RUNTIME = 1 << 0;
export const PRIV_PARTITION_REFERENCE_COUNTER = 1 << 1;
export const PRIV_SYNIC_REGS = 1 << 2;
export const PRIV_SYNTHETIC_TIMER_REGS = 1 << 3;
export const PRIV_INTR_CTRL_REGS = 1 << 4;
export const PRIV_HYPERCALL_MSRS = 1 << 5;
export const PRIV_VP_INDEX = 1 << 6;
export const PRIV_PARTITION_REFERENCE_TSC = 1 << 9;
export const PRIV_FREQUENCY_REGS = 1 << 11;
// ---- high dword (0x40000003.EBX) ----
export const PRIV_HIGH_POST_MESSAGES = 1 << 4;
export const PRIV_HIGH_SIGNAL_EVENTS = 1 << 5;

// ---- 0x40000003.EDX features ----
export const FEATURE_XMM_HYPERCALL_INPUT = 1 << 4;
export const FEATURE_FREQUENCY_MSRS = 1 << 8;
export const FEATURE_GUEST_CRASH_MSRS = 1 << 10;
export const FEATURE_DIRECT_SYNTHETIC_TIMERS = 1 << 19;

// ---- 0x40000004.EAX recommendations ----
export const HINT_REMOTE_TLB_FLUSH = 1 << 2;
export const HINT_RELAXED_TIMING = 1 << 5;
export const HINT_DEPRECATE_AUTO_EOI = 1 << 9;
export const HINT_CLUSTER_IPI = 1 << 10;
export const HINT_EX_PROCESSOR_MASKS = 1 << 11;

// ---- hypercall codes (hypercalls/*.md) ----
export const HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE = 0x0002;
export const HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST = 0x0003;
export const HVCALL_NOTIFY_LONG_SPIN_WAIT = 0x0008;
export const HVCALL_SEND_SYNTHETIC_CLUSTER_IPI = 0x000b;
export const HVCALL_FLUSH_VIRTUAL_ADDRESS_SPACE_EX = 0x0013;
export const HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST_EX = 0x0014;
export const HVCALL_SEND_SYNTHETIC_CLUSTER_IPI_EX = 0x0015;
export const HVCALL_POST_MESSAGE = 0x005c;
export const HVCALL_SIGNAL_EVENT = 0x005d;

// ---- HV_STATUS (hypercall-interface.md "Hypercall Status Codes"; values as in the TLFS PDF appendix) ----
export const HV_STATUS_SUCCESS = 0x0000;
export const HV_STATUS_INVALID_HYPERCALL_CODE = 0x0002;
export const HV_STATUS_INVALID_HYPERCALL_INPUT = 0x0003;
export const HV_STATUS_INVALID_ALIGNMENT = 0x0004;
export const HV_STATUS_INVALID_PARAMETER = 0x0005;
export const HV_STATUS_ACCESS_DENIED = 0x0006;
export const HV_STATUS_INSUFFICIENT_MEMORY = 0x000b;
export const HV_STATUS_INVALID_VP_INDEX = 0x000e;
export const HV_STATUS_INVALID_PORT_ID = 0x0011;
export const HV_STATUS_INVALID_CONNECTION_ID = 0x0012;
export const HV_STATUS_INSUFFICIENT_BUFFERS = 0x0013;
export const HV_STATUS_INVALID_SYNIC_STATE = 0x0018;

// ---- SynIC (inter-partition-communication.md) ----
export const SINT_COUNT = 16;
export const SINT_MASKED = 1 << 16;
export const SINT_AUTO_EOI = 1 << 17;
export const SINT_POLLING = 1 << 18;
/** SINT register value after reset: masked, vector 0. */
export const SINT_RESET = SINT_MASKED;
export const MESSAGE_SIZE = 256;
export const MESSAGE_PAYLOAD_MAX = 240;
export const MESSAGE_FLAG_PENDING = 1;
export const HVMSG_NONE = 0;
export const HVMSG_TIMER_EXPIRED = 0x80000010;
/** Value of SVERSION (read-only). */
export const SYNIC_VERSION = 1;

// ---- synthetic timers (timers.md "Synthetic Timer Configuration Register") ----
export const STIMER_COUNT = 4;
export const STIMER_ENABLE = 1 << 0;
export const STIMER_PERIODIC = 1 << 1;
export const STIMER_LAZY = 1 << 2;
export const STIMER_AUTO_ENABLE = 1 << 3;
export const STIMER_DIRECT = 1 << 12;
/** Bits of STIMERx_CONFIG that are defined (63:20 and 15:13 are RsvdZ). */
export const STIMER_CONFIG_DEFINED = 0x000f1fff;

// ---- crash MSRs (datatypes/hv_crash_ctl_reg_contents.md) ----
/** CRASH_CTL bit 63 (in the high dword): CrashNotify. */
export const CRASH_CTL_NOTIFY_HI = 0x80000000;
/** CRASH_CTL bit 62 (in the high dword): CrashMessage (P3 = message GPA, P4 = length). */
export const CRASH_CTL_MESSAGE_HI = 0x40000000;
