Zc
a
agent-2esx-02san-vmfs-01*Debian GNU/Linux 12 (bookworm)0:san:hotadd:nbdssl:nbdB0.1.0