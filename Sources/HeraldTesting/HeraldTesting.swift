// HeraldTesting
