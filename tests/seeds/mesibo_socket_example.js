var s = new Socket("sock://example.com:80");
s.onconnect = function(s) {
	print("connected");
	s.send("GET / HTTP/1.0\r\nHost: example.com\r\nConnection: close\r\n\r\n");
}

s.ondata = function(s) {
	print(s);
}

s.open();
