/* SPDX-License-Identifier: MIT */
/*
 * testguest: a freestanding test kernel for vmm-run. Entered like a Linux
 * vmlinux (64-bit, identity-mapped, RSI = boot_params), it reports what the
 * VMM told it (CPUs from the ACPI MADT, RAM from the e820 map, the command
 * line) on COM1 and then does what `testguest.action=` asks: power off,
 * reboot, crash, hang, echo the console, write a value to a port, or
 * spin (burn CPU for ever, for the noisy-neighbour benchmark).
 *
 * Everything here runs emulated on hosts without VT-x/AMD-V (~1 us per
 * instruction, ~9 us per port access), so it does little and polls only
 * where it must.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "testguest.h"

/* struct boot_params offsets (Linux arch/x86/include/uapi/asm/bootparam.h). */
#define BP_ACPI_RSDP_ADDR	0x070	/* u64 */
#define BP_EXT_RAMDISK_IMAGE	0x0c0	/* u32, high halves */
#define BP_EXT_RAMDISK_SIZE	0x0c4
#define BP_EXT_CMD_LINE_PTR	0x0c8	/* u32, high half of the pointer */
#define BP_E820_ENTRIES		0x1e8	/* u8 */
#define BP_RAMDISK_IMAGE	0x218	/* u32 */
#define BP_RAMDISK_SIZE		0x21c	/* u32 */
#define BP_CMD_LINE_PTR		0x228	/* u32 */
#define BP_E820_TABLE		0x2d0	/* 20-byte entries */
#define BP_E820_MAX		128
#define E820_RAM		1

#define COM1			0x3f8
#define UART_LSR		5
#define UART_LSR_DR		0x01
#define UART_LSR_THRE		0x20

#define I8042_CMD		0x64
#define I8042_RESET		0xfe

#define PM1_PWRBTN_STS		(1u << 8)
#define SLP_TYP_S5		(5u << 10)
#define SLP_EN			(1u << 13)

#define EXIT_PORT		0x501

#define CMDLINE_MAX		4096
/* Summing more of the initrd than this costs seconds where it is emulated. */
#define INITRD_SUM_MAX		(64 * 1024)
/* The local APIC and IOAPIC pages: never RAM, whatever else the map says. */
#define APIC_MMIO_START		0xfec00000ULL
#define APIC_MMIO_END		0xfee01000ULL
#define ACTION_KEY		"testguest.action="

/* ACPI table layout (ACPI 6.x, section 5.2). */
#define SDT_HEADER_LEN		36
#define MADT_ENTRIES		44
#define MADT_LAPIC		0
#define MADT_X2APIC		9
#define MADT_ENABLED		1u
#define FADT_PM1A_EVT_BLK	56
#define FADT_PM1A_CNT_BLK	64
#define FADT_X_PM1A_CNT_BLK	172	/* Generic Address Structure */

static const uint8_t *
phys(uint64_t pa)
{
	return (const uint8_t *)(uintptr_t)pa;
}

static uint8_t
rd8(const uint8_t *p)
{
	return *(const volatile uint8_t *)p;
}

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(rd8(p) | rd8(p + 1) << 8);
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t
rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void
outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void
outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static void
outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static uint16_t
inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static uint8_t
inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/*
 * Bounded, so that a UART model that never reports THRE costs a slow
 * console rather than a guest spinning forever.
 */
static void
uart_putc(char c)
{
	unsigned int i;

	for (i = 0; i < 100000; i++)
		if (inb(COM1 + UART_LSR) & UART_LSR_THRE)
			break;
	outb(COM1, (uint8_t)c);
}

static void
puts_raw(const char *s)
{
	while (*s)
		uart_putc(*s++);
}

static void
put_dec(uint64_t v)
{
	char buf[24];
	int n = 0;

	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		uart_putc(buf[--n]);
}

static void
put_hex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int shift;

	puts_raw("0x");
	for (shift = 60; shift > 0 && !(v >> shift); shift -= 4)
		;
	for (; shift >= 0; shift -= 4)
		uart_putc(digits[(v >> shift) & 0xf]);
}

/* Problems in what the VMM handed over: reported, not fatal. */
static void
warn(const char *what, uint64_t value)
{
	puts_raw("TESTGUEST-WARN ");
	puts_raw(what);
	uart_putc(' ');
	put_hex(value);
	uart_putc('\n');
}

/*
 * Give the VMM time to act on a stop request before concluding that it did
 * not: each port read is an exit it can stop the vCPU at.
 */
static void
settle(void)
{
	unsigned int i;

	for (i = 0; i < 2000; i++)
		(void)inb(COM1 + UART_LSR);
}

static bool
mem_eq(const uint8_t *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rd8(a + i) != (uint8_t)b[i])
			return false;
	return true;
}

static bool
checksum_ok(const uint8_t *p, uint32_t len)
{
	uint8_t sum = 0;
	uint32_t i;

	for (i = 0; i < len; i++)
		sum = (uint8_t)(sum + rd8(p + i));
	return sum == 0;
}

/* Firmware's place for the RSDP, for VMMs that do not fill acpi_rsdp_addr. */
static uint64_t
rsdp_scan(void)
{
	uint64_t pa;

	for (pa = 0xe0000; pa < 0x100000; pa += 16)
		if (mem_eq(phys(pa), "RSD PTR ", 8) && checksum_ok(phys(pa), 20))
			return pa;
	return 0;
}

static uint64_t
rsdp_find(const uint8_t *bp)
{
	uint64_t pa = rd64(bp + BP_ACPI_RSDP_ADDR);

	if (pa == 0)
		return rsdp_scan();
	if (!mem_eq(phys(pa), "RSD PTR ", 8)) {
		warn("rsdp-signature", pa);
		return 0;
	}
	if (!checksum_ok(phys(pa), 20))
		warn("rsdp-checksum", pa);
	if (rd8(phys(pa) + 15) >= 2 && !checksum_ok(phys(pa), rd32(phys(pa) + 20)))
		warn("rsdp-ext-checksum", pa);
	return pa;
}

/* The table with this signature through the XSDT (or the RSDT), or 0. */
static uint64_t
acpi_find(uint64_t rsdp, const char *sig)
{
	const uint8_t *r = phys(rsdp);
	uint64_t root, pa;
	uint32_t len, i, entry;

	if (!rsdp)
		return 0;
	if (rd8(r + 15) >= 2 && rd64(r + 24)) {
		root = rd64(r + 24);
		entry = 8;
		if (!mem_eq(phys(root), "XSDT", 4)) {
			warn("xsdt-signature", root);
			return 0;
		}
	} else {
		root = rd32(r + 16);
		entry = 4;
		if (!mem_eq(phys(root), "RSDT", 4)) {
			warn("rsdt-signature", root);
			return 0;
		}
	}
	len = rd32(phys(root) + 4);
	if (len < SDT_HEADER_LEN || len > 0x10000) {
		warn("root-table-length", len);
		return 0;
	}
	for (i = SDT_HEADER_LEN; i + entry <= len; i += entry) {
		pa = entry == 8 ? rd64(phys(root) + i) : rd32(phys(root) + i);
		if (pa && mem_eq(phys(pa), sig, 4)) {
			uint32_t tlen = rd32(phys(pa) + 4);

			if (tlen < SDT_HEADER_LEN || tlen > 0x10000 ||
			    !checksum_ok(phys(pa), tlen))
				warn(sig, pa);
			return pa;
		}
	}
	return 0;
}

static unsigned int
madt_count_cpus(uint64_t madt)
{
	const uint8_t *m = phys(madt);
	uint32_t len, off;
	unsigned int n = 0;

	if (!madt)
		return 0;
	len = rd32(m + 4);
	if (len > 0x10000)
		len = 0x10000;
	for (off = MADT_ENTRIES; off + 2 <= len;) {
		uint8_t type = rd8(m + off), elen = rd8(m + off + 1);

		if (elen < 2 || off + elen > len) {
			warn("madt-entry", off);
			break;
		}
		if (type == MADT_LAPIC && elen >= 8 &&
		    (rd32(m + off + 4) & MADT_ENABLED))
			n++;
		else if (type == MADT_X2APIC && elen >= 16 &&
			 (rd32(m + off + 8) & MADT_ENABLED))
			n++;
		off += elen;
	}
	return n;
}

static unsigned int
e820_count(const uint8_t *bp)
{
	unsigned int n = rd8(bp + BP_E820_ENTRIES);

	return n > BP_E820_MAX ? BP_E820_MAX : n;
}

/* True when [pa, pa + len) lies inside one usable (RAM) e820 entry. */
static bool
e820_is_ram(const uint8_t *bp, uint64_t pa, uint64_t len)
{
	unsigned int n = e820_count(bp), i;

	for (i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + 20 * i;
		uint64_t a = rd64(e), sz = rd64(e + 8);

		if (rd32(e + 16) == E820_RAM && pa >= a && pa - a <= sz &&
		    len <= sz - (pa - a))
			return true;
	}
	return false;
}

/* True when [pa, pa + len) overlaps any usable (RAM) e820 entry. */
static bool
e820_overlaps_ram(const uint8_t *bp, uint64_t pa, uint64_t len)
{
	unsigned int n = e820_count(bp), i;

	for (i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + 20 * i;
		uint64_t a = rd64(e), sz = rd64(e + 8);

		if (rd32(e + 16) == E820_RAM && pa < a + sz && a < pa + len)
			return true;
	}
	return false;
}

/*
 * What a kernel would trip over: overlapping or zero-sized entries, RAM on
 * top of the APICs, and ACPI tables in RAM (the kernel would reuse it and
 * lose them).
 */
static void
e820_check(const uint8_t *bp, uint64_t rsdp)
{
	static const char *const sigs[] = { "APIC", "FACP" };
	unsigned int n = rd8(bp + BP_E820_ENTRIES), i, j;

	if (n == 0)
		warn("e820-empty", 0);
	if (n > BP_E820_MAX)
		warn("e820-entries", n);
	n = e820_count(bp);
	for (i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + 20 * i;
		uint64_t a = rd64(e), sz = rd64(e + 8);

		if (sz == 0 || a + sz < a)
			warn("e820-entry-size", i);
		for (j = i + 1; j < n; j++) {
			const uint8_t *f = bp + BP_E820_TABLE + 20 * j;

			if (a < rd64(f) + rd64(f + 8) && rd64(f) < a + sz)
				warn("e820-overlap", (uint64_t)i << 8 | j);
		}
	}
	if (e820_overlaps_ram(bp, APIC_MMIO_START,
			      APIC_MMIO_END - APIC_MMIO_START))
		warn("e820-ram-over-apic", APIC_MMIO_START);
	if (rsdp && e820_overlaps_ram(bp, rsdp, 36))
		warn("acpi-rsdp-in-ram", rsdp);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		uint64_t t = acpi_find(rsdp, sigs[i]);

		if (t && e820_overlaps_ram(bp, t, rd32(phys(t) + 4)))
			warn("acpi-table-in-ram", t);
	}
}

/*
 * Where the initrd is, how big, and the byte sum of (up to INITRD_SUM_MAX
 * of) it, so that a test can tell that the VMM loaded the right bytes.
 */
static void
initrd_report(const uint8_t *bp)
{
	uint64_t pa = rd32(bp + BP_RAMDISK_IMAGE) |
		      (uint64_t)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	uint64_t size = rd32(bp + BP_RAMDISK_SIZE) |
			(uint64_t)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
	uint64_t i, n = size < INITRD_SUM_MAX ? size : INITRD_SUM_MAX;
	uint32_t sum = 0;

	if (!size)
		return;
	if (!e820_is_ram(bp, pa, size)) {
		warn("initrd-not-in-ram", pa);
		return;
	}
	for (i = 0; i < n; i++)
		sum += rd8(phys(pa + i));
	puts_raw("TESTGUEST-INITRD addr=");
	put_hex(pa);
	puts_raw(" size=");
	put_dec(size);
	puts_raw(" sum=");
	put_dec(sum);
	uart_putc('\n');
}

static uint64_t
e820_ram_mib(const uint8_t *bp)
{
	unsigned int n = e820_count(bp), i;
	uint64_t total = 0;

	for (i = 0; i < n; i++) {
		const uint8_t *e = bp + BP_E820_TABLE + 20 * i;

		if (rd32(e + 16) == E820_RAM)
			total += rd64(e + 8);
	}
	return total >> 20;
}

static const char *
cmdline_get(const uint8_t *bp)
{
	uint64_t pa = rd32(bp + BP_CMD_LINE_PTR) |
		      (uint64_t)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;

	return pa ? (const char *)phys(pa) : "";
}

/*
 * The value of testguest.action= (up to the next space) into buf, or
 * "poweroff" when there is none or it is empty.
 */
static void
action_get(const char *cmdline, char *buf, size_t size)
{
	const char *key = ACTION_KEY, *def = "poweroff";
	size_t klen = sizeof(ACTION_KEY) - 1, i, n;

	buf[0] = 0;
	for (i = 0; cmdline[i] && i < CMDLINE_MAX; i++) {
		if ((i == 0 || cmdline[i - 1] == ' ') &&
		    mem_eq((const uint8_t *)cmdline + i, key, klen)) {
			const char *v = cmdline + i + klen;

			/* The last one wins, as with kernel parameters. */
			for (n = 0; v[n] && v[n] != ' ' && n + 1 < size; n++)
				buf[n] = v[n];
			buf[n] = 0;
		}
	}
	if (!buf[0]) {
		for (n = 0; def[n] && n + 1 < size; n++)
			buf[n] = def[n];
		buf[n] = 0;
	}
}

static bool
str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static void
poweroff(uint64_t rsdp)
{
	uint64_t fadt = acpi_find(rsdp, "FACP");
	uint32_t port = 0;

	if (fadt) {
		const uint8_t *f = phys(fadt);
		uint32_t len = rd32(f + 4);

		if (len >= FADT_PM1A_CNT_BLK + 4)
			port = rd32(f + FADT_PM1A_CNT_BLK);
		/* Newer FADTs may give only the GAS form (space 1: I/O). */
		if (!port && len >= FADT_X_PM1A_CNT_BLK + 12 &&
		    rd8(f + FADT_X_PM1A_CNT_BLK) == 1)
			port = (uint32_t)rd64(f + FADT_X_PM1A_CNT_BLK + 4);
	}
	puts_raw("TESTGUEST-POWEROFF\n");
	if (port && port <= 0xffff) {
		outw((uint16_t)port, SLP_TYP_S5 | SLP_EN);
		settle();
	}
	puts_raw("TESTGUEST-POWEROFF-FAILED");
	if (!fadt)
		puts_raw(" no FADT");
	else if (!port || port > 0xffff)
		puts_raw(" no PM1a_CNT_BLK");
	else {
		puts_raw(" pm1a_cnt=");
		put_hex(port);
	}
	uart_putc('\n');
	testguest_halt_forever();
}

static void
reboot(void)
{
	puts_raw("TESTGUEST-REBOOT\n");
	outb(I8042_CMD, I8042_RESET);
	settle();
	puts_raw("TESTGUEST-REBOOT-FAILED\n");
	testguest_halt_forever();
}

/* The PM1a event block's port (status at +0), or 0. */
static uint16_t
pm1_evt_port(uint64_t rsdp)
{
	uint64_t fadt = acpi_find(rsdp, "FACP");
	uint32_t port;

	if (!fadt || rd32(phys(fadt) + 4) < FADT_PM1A_EVT_BLK + 4)
		return 0;
	port = rd32(phys(fadt) + FADT_PM1A_EVT_BLK);
	return port <= 0xffff ? (uint16_t)port : 0;
}

/*
 * Echo the console until 'q'. The ACPI power button (polled, as this
 * guest takes no interrupts) powers off too: the daemon's graceful stop.
 */
static void
echo(uint64_t rsdp)
{
	uint16_t evt = pm1_evt_port(rsdp);
	char last = '\n';

	puts_raw("TESTGUEST-ECHO\n");
	for (;;) {
		char c;

		while (!(inb(COM1 + UART_LSR) & UART_LSR_DR)) {
			if (evt && (inw(evt) & PM1_PWRBTN_STS)) {
				outw(evt, PM1_PWRBTN_STS);
				puts_raw("TESTGUEST-POWER-BUTTON\n");
				poweroff(rsdp);
			}
		}
		c = (char)inb(COM1);
		if (c == 'q')
			break;
		uart_putc(c);
		last = c;
	}
	if (last != '\n')
		uart_putc('\n');
	puts_raw("TESTGUEST-ECHO-DONE\n");
	poweroff(rsdp);
}

void
testguest_main(uint64_t boot_params)
{
	const uint8_t *bp = phys(boot_params);
	const char *cmdline;
	char action[32];
	uint64_t rsdp;
	unsigned int cpus;
	size_t i;

	puts_raw("TESTGUEST-READY\n");
	if (!boot_params) {
		puts_raw("TESTGUEST-FAILED no boot_params\n");
		testguest_halt_forever();
	}
	rsdp = rsdp_find(bp);
	cpus = madt_count_cpus(acpi_find(rsdp, "APIC"));
	cmdline = cmdline_get(bp);

	puts_raw("TESTGUEST-INFO cpus=");
	put_dec(cpus);
	puts_raw(" mem_mib=");
	put_dec(e820_ram_mib(bp));
	puts_raw(" cmdline=");
	for (i = 0; cmdline[i] && i < CMDLINE_MAX; i++)
		uart_putc(cmdline[i]);
	uart_putc('\n');
	initrd_report(bp);
	e820_check(bp, rsdp);

	action_get(cmdline, action, sizeof(action));
	if (str_eq(action, "poweroff")) {
		poweroff(rsdp);
	} else if (str_eq(action, "reboot")) {
		reboot();
	} else if (str_eq(action, "crash")) {
		puts_raw("TESTGUEST-CRASH\n");
		testguest_triple_fault();
	} else if (str_eq(action, "hang")) {
		puts_raw("TESTGUEST-HANG\n");
		testguest_halt_forever();
	} else if (str_eq(action, "echo")) {
		echo(rsdp);
	} else if (str_eq(action, "spin")) {
		/* A guest that always wants the CPU, never halting: what
		 * the CPU weight and quota benchmark puts on one host CPU. */
		puts_raw("TESTGUEST-SPIN\n");
		for (;;)
			__asm__ volatile("" ::: "memory");
	} else if (str_eq(action, "exit-port")) {
		outl(EXIT_PORT, cpus);
		poweroff(rsdp);
	} else {
		puts_raw("TESTGUEST-UNKNOWN-ACTION ");
		puts_raw(action);
		uart_putc('\n');
		poweroff(rsdp);
	}
	testguest_halt_forever();
}
