Z

fuzzpeer0