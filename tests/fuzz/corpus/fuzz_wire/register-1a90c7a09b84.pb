Ze
c
agent-3esx-03vsanDatastore*Debian GNU/Linux 12 (bookworm)0:san:hotadd:nbdssl:nbdB0.1.0