#!/usr/bin/env python3
"""What the NVIDIA driver made of our WGSL: registers, shared memory and an opcode count per compiled pipeline.

WebGPU cannot report a pipeline's register count or its machine code, but the NVIDIA Vulkan driver keeps what it
compiled in its disk cache, where the compute shaders sit as CUDA ELF images (cubins). This script finds those images
in a cache folder and runs the disassembler Triton ships with PyTorch (`nvdisasm`) on each.

On the GPU host (carry .gpu; the torch/triton install there provides nvdisasm):

    export __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH=/tmp/nvcache __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1
    rm -rf /tmp/nvcache; mkdir -p /tmp/nvcache
    node dist/test/kernels/kernel-timing.js --attention-only      # compiles the pipelines of interest
    python3 scripts/sass-dump.py /tmp/nvcache --out $OUT/sass     # summary.txt + one .sass per image, tarred

Per image: the kernel's register count and shared memory (from the ELF's .nv.info attributes as nvdisasm prints
them), its instruction count and the opcodes it uses most. The images are named by their order in the cache; match
them to pipelines by their shared memory (the attention layouts' bytes are in their sweep names).
"""
import argparse
import collections
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile


def find_tool(name):
    path = shutil.which(name)
    if path:
        return path
    try:
        import triton  # noqa: F401  (only to find its bundled CUDA tools)
        base = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin', name)
        return base if os.path.exists(base) else None
    except ImportError:
        return None


def elf_images(blob):
    """Every 64-bit little-endian ELF image in `blob`, cut at the end of its section header table."""
    at = 0
    while True:
        at = blob.find(b'\x7fELF\x02\x01', at)
        if at < 0:
            return
        try:
            e_shoff, = struct.unpack_from('<Q', blob, at + 0x28)
            e_shentsize, e_shnum = struct.unpack_from('<HH', blob, at + 0x3A)
            end = e_shoff + e_shentsize * e_shnum
            e_phoff, = struct.unpack_from('<Q', blob, at + 0x20)
            e_phentsize, e_phnum = struct.unpack_from('<HH', blob, at + 0x36)
            end = max(end, e_phoff + e_phentsize * e_phnum)
            if 64 <= end <= len(blob) - at and e_shentsize == 64:
                yield blob[at:at + end]
                at += end
                continue
        except struct.error:
            pass
        at += 4


def elf_sections(image):
    """(name, size, sh_info) of every section of an ELF64 image."""
    e_shoff, = struct.unpack_from('<Q', image, 0x28)
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from('<HHH', image, 0x3A)
    headers = [struct.unpack_from('<IIQQQQIIQQ', image, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    names_at = headers[e_shstrndx][4]
    sections = []
    for h in headers:
        start = names_at + h[0]
        name = image[start:image.index(b'\0', start)].decode('latin-1')
        sections.append((name, h[5], h[7]))
    return sections


def resources(image):
    """Registers (a CUDA .text section's sh_info >> 24) and shared memory (.nv.shared sections) of an image."""
    try:
        sections = elf_sections(image)
    except (struct.error, ValueError, IndexError):
        return 'unreadable sections'
    regs = [f'{name[6:] or "text"} REG:{info >> 24}' for name, _, info in sections if name.startswith('.text')]
    shared = [f'SHARED:{size}' for name, size, _ in sections if name.startswith('.nv.shared')]
    return ' '.join(regs + shared) or ' '.join(name for name, _, _ in sections)[:300]


def summarise(sass):
    ops = collections.Counter()
    for line in sass.splitlines():
        m = re.match(r'\s*/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)', line)
        if m:
            ops[m.group(2).split('.')[0]] += 1
    return ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('cache', help='the driver cache folder (__GL_SHADER_DISK_CACHE_PATH)')
    parser.add_argument('--out', required=True, help='folder for summary.txt and sass.tgz')
    parser.add_argument('--min-shared', type=int, default=0, help='keep only images using at least this many bytes of shared memory')
    args = parser.parse_args()
    nvdisasm = find_tool('nvdisasm')
    cuobjdump = find_tool('cuobjdump')
    os.makedirs(args.out, exist_ok=True)
    summary = [f'nvdisasm: {nvdisasm}', f'cuobjdump: {cuobjdump}']
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(args.cache) for f in fs)
    summary.append(f'cache files: {len(files)}, bytes: {sum(os.path.getsize(f) for f in files)}')
    images = []
    for path in files:
        with open(path, 'rb') as fh:
            images.extend(elf_images(fh.read()))
    summary.append(f'ELF images: {len(images)}')
    if not images:
        # Unknown cache format (compressed?): keep the cache itself, and its files' first bytes, to study here.
        for path in files[:20]:
            with open(path, 'rb') as fh:
                summary.append(f'{os.path.relpath(path, args.cache)} {os.path.getsize(path)} {fh.read(32).hex()}')
        with tarfile.open(os.path.join(args.out, 'cache.tgz'), 'w:gz') as tar:
            tar.add(args.cache, arcname='cache')
    kept = []
    for i, image in enumerate(images):
        cubin = os.path.join(args.out, f'image{i:03d}.cubin')
        with open(cubin, 'wb') as fh:
            fh.write(image)
        usage = resources(image)
        if cuobjdump:
            r = subprocess.run([cuobjdump, '-res-usage', cubin], capture_output=True, text=True)
            usage += ' | ' + ' '.join((r.stdout + r.stderr).split())[-400:]
        shared = re.search(r'SHARED:(\d+)', usage)
        if shared and int(shared.group(1)) < args.min_shared:
            os.remove(cubin)
            continue
        sass = ''
        if nvdisasm:
            r = subprocess.run([nvdisasm, '-c', '-hex', cubin], capture_output=True, text=True)
            sass = r.stdout or r.stderr
            with open(cubin.replace('.cubin', '.sass'), 'w') as fh:
                fh.write(sass)
        ops = summarise(sass)
        kept.append(i)
        summary.append(f'image{i:03d}: {len(image)} bytes; {usage}')
        summary.append(f'  {sum(ops.values())} instructions: ' + ', '.join(f'{op} {n}' for op, n in ops.most_common(40)))
        os.remove(cubin)
    with open(os.path.join(args.out, 'summary.txt'), 'w') as fh:
        fh.write('\n'.join(summary) + '\n')
    with tarfile.open(os.path.join(args.out, 'sass.tgz'), 'w:gz') as tar:
        for i in kept:
            path = os.path.join(args.out, f'image{i:03d}.sass')
            if os.path.exists(path):
                tar.add(path, arcname=os.path.basename(path))
                os.remove(path)
    print('\n'.join(summary))


if __name__ == '__main__':
    sys.exit(main())
