// HeraldLog
