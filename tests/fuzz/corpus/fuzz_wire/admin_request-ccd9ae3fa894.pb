’
restore-point.show{"id":8}