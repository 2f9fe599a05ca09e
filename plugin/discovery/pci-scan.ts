/**
 * PCI scan of <sys-root>/bus/pci/devices: NVIDIA (vendor 0x10de) display controllers, class 0x0300xx
 * (VGA) or 0x0302xx (3D controller). No device-ID tables: any NVIDIA GPU the kernel sees is found.
 * Every unreadable attribute becomes a Problem and a null, never an exception: one broken device
 * must not hide the others.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { PciGpu, PcieLink, Problem } from './types.ts';

export const NVIDIA_VENDOR_ID = 0x10de;
const PCI_CLASS_VGA = 0x0300;
const PCI_CLASS_3D = 0x0302;
const PCI_ADDRESS_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const HEX_RE = /^0x[0-9a-fA-F]+$/;

export function isNvidiaGpu(vendorId: number, classCode: number): boolean {
  const cls = classCode >> 8;
  return vendorId === NVIDIA_VENDOR_ID && (cls === PCI_CLASS_VGA || cls === PCI_CLASS_3D);
}

type Attr = { ok: true; value: string } | { ok: false; error: string };

function readAttr(dir: string, name: string): Attr {
  try {
    return { ok: true, value: readFileSync(join(dir, name), 'latin1').trim() };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, error: code === 'ENOENT' ? 'missing' : `unreadable (${code ?? String(err)})` };
  }
}

function parseHex(attr: Attr, maxBits: number): number | string {
  if (!attr.ok) return attr.error;
  if (!HEX_RE.test(attr.value)) return `not a hex number: ${JSON.stringify(attr.value.slice(0, 40))}`;
  const n = Number.parseInt(attr.value.slice(2), 16);
  if (n >= 2 ** maxBits) return `out of range: ${attr.value}`;
  return n;
}

/** PCIe line encoding: 8b/10b up to 5 GT/s, 128b/130b from 8 GT/s, FLIT (242/256) from 64 GT/s. */
export function pcieBandwidth(gtPerSec: number, width: number): number {
  const efficiency = gtPerSec <= 5 ? 8 / 10 : gtPerSec < 64 ? 128 / 130 : 242 / 256;
  return Math.floor((gtPerSec * 1e9 * efficiency * width) / 8);
}

function readLink(dir: string, problems: Problem[], address: string): PcieLink {
  const speedAttr = readAttr(dir, 'current_link_speed');
  const widthAttr = readAttr(dir, 'current_link_width');
  let speed: string | null = null;
  let gtPerSec: number | null = null;
  let width: number | null = null;
  if (speedAttr.ok) {
    speed = speedAttr.value;
    const m = /^([0-9]+(?:\.[0-9]+)?) GT\/s/.exec(speedAttr.value);
    if (m) gtPerSec = Number(m[1]);
    else if (speedAttr.value !== 'Unknown')
      problems.push({ subject: address, message: `current_link_speed: cannot parse ${JSON.stringify(speedAttr.value.slice(0, 40))}` });
  }
  if (widthAttr.ok) {
    if (/^[0-9]{1,2}$/.test(widthAttr.value) && Number(widthAttr.value) > 0) width = Number(widthAttr.value);
    else problems.push({ subject: address, message: `current_link_width: cannot parse ${JSON.stringify(widthAttr.value.slice(0, 40))}` });
  }
  const bandwidthBytesPerSec = gtPerSec !== null && width !== null ? pcieBandwidth(gtPerSec, width) : null;
  return { speed, gtPerSec, width, bandwidthBytesPerSec };
}

function readNuma(dir: string, problems: Problem[], address: string): number {
  const attr = readAttr(dir, 'numa_node');
  if (!attr.ok) {
    problems.push({ subject: address, message: `numa_node ${attr.error}; assuming no NUMA affinity` });
    return -1;
  }
  if (!/^-?[0-9]{1,4}$/.test(attr.value) || Number(attr.value) < -1) {
    problems.push({
      subject: address,
      message: `numa_node: cannot parse ${JSON.stringify(attr.value.slice(0, 40))}; assuming no NUMA affinity`,
    });
    return -1;
  }
  return Number(attr.value);
}

function readDriver(dir: string): string | null {
  try {
    return basename(readlinkSync(join(dir, 'driver')));
  } catch {
    return null;
  }
}

/** Scans <sysRoot>/bus/pci/devices and returns the NVIDIA GPUs in address order. */
export function scanPci(sysRoot: string): { gpus: PciGpu[]; problems: Problem[] } {
  const devicesDir = join(sysRoot, 'bus', 'pci', 'devices');
  const problems: Problem[] = [];
  let entries: string[];
  try {
    entries = readdirSync(devicesDir).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    problems.push({ subject: devicesDir, message: `cannot list PCI devices (${code}); is --sys-root right?` });
    return { gpus: [], problems };
  }
  // One address, one device: names that differ only in case would otherwise offer one GPU twice. The
  // kernel writes lower case, so a lower-case name wins; any other spelling is reported and ignored.
  const byAddress = new Map<string, string[]>();
  for (const name of entries) {
    const address = name.toLowerCase();
    if (!PCI_ADDRESS_RE.test(address)) continue; // not a PCI function directory
    byAddress.set(address, [...(byAddress.get(address) ?? []), name]);
  }
  const gpus: PciGpu[] = [];
  for (const [address, names] of byAddress) {
    const name = names.includes(address) ? address : names[0]!;
    for (const other of names)
      if (other !== name)
        problems.push({ subject: address, message: `${other} names the same PCI function as ${name} (the case differs); ignored` });
    const dir = join(devicesDir, name);
    const vendor = parseHex(readAttr(dir, 'vendor'), 16);
    if (typeof vendor === 'string') {
      problems.push({ subject: address, message: `vendor ${vendor}; device skipped` });
      continue;
    }
    if (vendor !== NVIDIA_VENDOR_ID) continue;
    const classCode = parseHex(readAttr(dir, 'class'), 24);
    if (typeof classCode === 'string') {
      problems.push({ subject: address, message: `NVIDIA device with class ${classCode}; device skipped` });
      continue;
    }
    if (!isNvidiaGpu(vendor, classCode)) continue; // audio function, USB controller, bridge...
    const optionalHex = (attrName: string, bits: number): number | null => {
      const v = parseHex(readAttr(dir, attrName), bits);
      if (typeof v === 'string') {
        problems.push({ subject: address, message: `${attrName} ${v}` });
        return null;
      }
      return v;
    };
    gpus.push({
      address,
      vendorId: vendor,
      deviceId: optionalHex('device', 16),
      subsystemVendorId: optionalHex('subsystem_vendor', 16),
      subsystemDeviceId: optionalHex('subsystem_device', 16),
      classCode,
      numaNode: readNuma(dir, problems, address),
      driver: readDriver(dir),
      link: readLink(dir, problems, address),
    });
  }
  return { gpus, problems };
}
