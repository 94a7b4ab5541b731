//! dockerd's default seccomp profile (moby's profiles/seccomp/default.json)
//! as compact data: what it allows, under which condition. `builtin()`
//! turns it into the same `Profile` a user's JSON becomes. Architectures
//! coracle does not run on (ppc, s390, mips, riscv) are left out.

use super::profile::{Action, Cond, Filter, Op, Profile, Rule};

/// Allowed for every container.
const ALLOW: &str = "
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
    chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
    fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
    futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
    getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid
    getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
    get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
    gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
    io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
    landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat
    listen listmount listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr
    lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir
    mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
    mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink
    mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at
    nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
    pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv
    preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
    readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
    remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall
    riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
    sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
    sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
    setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd
    signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64
    statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
    timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
    uretprobe utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid
    write writev
";

/// Allowed when the container holds the capability.
const WITH_CAP: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie \
         lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount \
         open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog \
         umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// Allowed on these host architectures (Go's names).
const ON_ARCH: &[(&str, &str)] = &[
    (
        "arm arm64",
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    ("amd64 x32", "arch_prctl"),
    ("amd64 x32 x86", "modify_ldt"),
];

/// `personality` values allowed: PER_LINUX, UNAME26, PER_LINUX32,
/// PER_LINUX32|UNAME26, and the query 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `clone` flags that create namespaces (CLONE_NEWNS ... CLONE_NEWNET,
/// CLONE_NEWCGROUP): refused without CAP_SYS_ADMIN.
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

const EPERM: u16 = 1;
const ENOSYS: u16 = 38;

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn rule(names: &str, action: Action, args: Vec<Cond>) -> Rule {
    Rule {
        names: words(names),
        action,
        args,
        includes: Filter::default(),
        excludes: Filter::default(),
    }
}

fn arg0(op: Op, value: u64, value_two: u64) -> Vec<Cond> {
    vec![Cond {
        index: 0,
        value,
        value_two,
        op,
    }]
}

pub fn builtin() -> Profile {
    let mut rules = vec![rule(ALLOW, Action::Allow, Vec::new())];
    let mut ptrace = rule(
        "process_vm_readv process_vm_writev ptrace",
        Action::Allow,
        Vec::new(),
    );
    ptrace.includes.min_kernel = Some((4, 8));
    rules.push(ptrace);
    // socket(): every address family but AF_ALG (38) and AF_VSOCK (40).
    rules.push(rule("socket", Action::Allow, arg0(Op::Lt, 38, 0)));
    rules.push(rule("socket", Action::Allow, arg0(Op::Eq, 39, 0)));
    rules.push(rule("socket", Action::Allow, arg0(Op::Gt, 40, 0)));
    for p in PERSONALITIES {
        rules.push(rule("personality", Action::Allow, arg0(Op::Eq, *p, 0)));
    }
    for (arches, names) in ON_ARCH {
        let mut r = rule(names, Action::Allow, Vec::new());
        r.includes.arches = words(arches);
        rules.push(r);
    }
    for (cap, names) in WITH_CAP {
        let mut r = rule(names, Action::Allow, Vec::new());
        r.includes.caps = vec![cap.to_string()];
        rules.push(r);
    }
    let admin = vec!["CAP_SYS_ADMIN".to_string()];
    let mut clone = rule(
        "clone",
        Action::Allow,
        arg0(Op::MaskedEq, CLONE_NS_FLAGS, 0),
    );
    clone.excludes.caps = admin.clone();
    rules.push(clone);
    // clone3's flags are in memory a filter cannot read: ENOSYS makes libc
    // fall back to clone, whose flags it can check.
    let mut clone3 = rule("clone3", Action::Errno(ENOSYS), Vec::new());
    clone3.excludes.caps = admin;
    rules.push(clone3);
    Profile {
        default: Action::Errno(EPERM),
        arch_map: vec![
            (
                "SCMP_ARCH_X86_64".into(),
                words("SCMP_ARCH_X86 SCMP_ARCH_X32"),
            ),
            ("SCMP_ARCH_AARCH64".into(), words("SCMP_ARCH_ARM")),
        ],
        architectures: Vec::new(),
        rules,
    }
}
