rô"nbdssl:
snapshot-9@€€€R/tmp/vbak-test.kL7DfN/site/repoX€€hr…
nbdssl{nbds://127.0.0.1:11907/vm-cloud-01--vm-cloud-01@snapshot-9?tls-certificates=%2Ftmp%2Fvbak-test.kL7DfN%2Fsite%2Ftls%2Fclient‚2000’vm-cloud-01 / Hard disk 1˜