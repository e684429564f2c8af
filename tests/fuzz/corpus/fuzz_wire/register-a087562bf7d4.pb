ZŠ
‡
agent-1esx-01san-vmfs-01"$naa.60003ff44dc75adc8f5e2d1a3b0c0001*Debian GNU/Linux 12 (bookworm)0:san:hotadd:nbdssl:nbdB0.1.0