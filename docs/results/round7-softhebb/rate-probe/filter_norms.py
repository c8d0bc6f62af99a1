import json, struct, sys, math
# Per-filter L2 norms of conv.0.weight from a safetensors export: quantiles (standard library only).
#   bio export --model DIR --out F.safetensors && python3 filter_norms.py F.safetensors [TENSOR ...]
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
for name in sys.argv[2:] or ['conv.0.weight']:
    m = h[name]; r, c = m['shape']; s, e = m['data_offsets']; f.seek(base + s)
    v = struct.unpack('<%df' % (r * c), f.read(e - s))
    norms = sorted(math.sqrt(sum(x * x for x in v[i * c:(i + 1) * c])) for i in range(r))
    print(name, 'norms min %.3f q25 %.3f median %.3f q75 %.3f max %.3f' % (norms[0], norms[r // 4], norms[r // 2], norms[3 * r // 4], norms[-1]))
