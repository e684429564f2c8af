’†
restore{{"rp":17,"to_dir":"/tmp/vbak-test.kL7DfN/restore-17","to_vm":false,"delete_snapshots":false,"new_vm":null,"datastore":null}