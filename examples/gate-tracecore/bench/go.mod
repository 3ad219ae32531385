module example.com/detectors

go 1.19
