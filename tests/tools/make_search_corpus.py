"""Writes the search test corpus (tests/fixtures/search/*.eml): one message per file,
CRLF line ends (files named lf-* keep bare LF). Run from that directory."""
import base64, quopri


def w(name, data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    if not name.startswith('lf-'):
        data = data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
    open(name + '.eml', 'wb').write(data)


def b64(b):
    s = base64.b64encode(b).decode()
    return '\n'.join(s[i:i + 76] for i in range(0, len(s), 76)) + '\n'


def H(subj, date='Tue, 05 Mar 2024 10:00:00 +0100', frm='Ann Example <ann@example.org>', to='bob@example.net',
      mid=None, extra=''):
    return (f"From: {frm}\nTo: {to}\nSubject: {subj}\nDate: {date}\n"
            f"Message-ID: <{mid or subj.split()[0].lower()}@corpus.example>\n{extra}")


w('plain-ascii', H('Plain quarterly', date='Mon, 15 Jan 2024 09:00:00 +0000')
  + "\nThe quarterly\nreport is attached below.\nRegards, Ann\n")
w('qp-latin1', H('Latin QP') + "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
  "Content-Transfer-Encoding: quoted-printable\n\nUn caf=E9 cr=E8me, the quar=\nterly numbers=3D fine.\n")
w('b64-utf8', H('Base64 russian').encode() + b"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
  b"Content-Transfer-Encoding: base64\n\n" + b64("Привет, мир! Встреча в пятницу.\n".encode()).encode())
w('koi8r', H('=?koi8-r?b?' + base64.b64encode('Отчёт за квартал'.encode('koi8-r')).decode() + '?=', mid='koi8').encode()
  + b"MIME-Version: 1.0\nContent-Type: text/plain; charset=koi8-r\nContent-Transfer-Encoding: 8bit\n\n"
  + "Добрый день, коллеги.\n".encode('koi8-r'))
w('cp1251-qp', H('Windows 1251').encode() + b"Content-Type: text/plain; charset=windows-1251\n"
  b"Content-Transfer-Encoding: quoted-printable\n\n" + quopri.encodestring("Здравствуйте, бухгалтерия.\n".encode('cp1251')))
w('iso2022jp', H('=?ISO-2022-JP?B?' + base64.b64encode('会議の件'.encode('iso2022_jp')).decode() + '?=', mid='jp').encode()
  + b"Content-Type: text/plain; charset=ISO-2022-JP\nContent-Transfer-Encoding: 7bit\n\n"
  + "こんにちは、明日の会議です。\n".encode('iso2022_jp'))
w('sjis-b64', H('Shift JIS').encode() + b"Content-Type: text/plain; charset=Shift_JIS\nContent-Transfer-Encoding: base64\n\n"
  + b64("東京の天気は晴れです。\n".encode('shift_jis')).encode())
w('gb2312', H('Chinese GB').encode() + b"Content-Type: text/plain; charset=gb2312\nContent-Transfer-Encoding: base64\n\n"
  + b64("你好世界，欢迎。\n".encode('gb2312')).encode())
w('big5', H('Chinese Big5').encode() + b"Content-Type: text/plain; charset=big5\nContent-Transfer-Encoding: 8bit\n\n"
  + "你好，臺灣。\n".encode('big5'))
w('euckr', H('Korean').encode() + b"Content-Type: text/plain; charset=ks_c_5601-1987\nContent-Transfer-Encoding: 8bit\n\n"
  + "안녕하세요 여러분\n".encode('euc_kr'))
w('alternative', H('Alternative parts') + "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"alt-1\"\n\n"
  "This is a multi-part message.\n--alt-1\nContent-Type: text/plain; charset=us-ascii\n\nHello plain wombat\n"
  "--alt-1\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
  "<html><body><p>Hello <b>wor</b>ld, caf&eacute; &amp; cr=C3=A8me&nbsp;br=\nul=C3=A9e</p><!-- hidden comment -->\n"
  "</body></html>\n--alt-1--\n")
w('attachment', H('Report with attachment') + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=mix\n\n"
  "--mix\nContent-Type: text/plain\n\nSee the file.\n--mix\nContent-Type: application/octet-stream; name=x.bin\n"
  "Content-Transfer-Encoding: base64\n\n" + b64(b"secretword inside a binary attachment\x00\x01") + "--mix--\n")
w('forwarded', H('Fwd: zoo news', frm='Dan <dan@example.com>') + "MIME-Version: 1.0\n"
  "Content-Type: multipart/mixed; boundary=\"fw\"\n\n--fw\nContent-Type: text/plain\n\nForwarding this.\n--fw\n"
  "Content-Type: message/rfc822\n\nFrom: Keeper <keeper@zoo.example>\nSubject: Inner subject zebra\n"
  "Date: Wed, 01 Feb 2023 08:00:00 +0000\n\nattached body giraffe\n--fw--\n")
w('encoded-from', H('Names', frm='=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jorg@example.de>',
  to='"Team" <team@example.net>, other@example.net', extra='Cc: Carol <carol@example.com>\n') + "\nShort note.\n")
w('raw-utf8-subject', H('Grüße aus Köln', mid='gruesse') + "Content-Type: text/plain; charset=utf-8\n\nEin Gruß.\n")
w('raw-latin1-subject', H('Gr\xfc\xdfe aus M\xfcnchen', mid='latin').encode('latin-1') + b"\nbody\n")
to = ', '.join(f'person{i}@example.com' for i in range(80)) + ', lastperson@example.com'
w('long-to', H('Many recipients', to=to) + "\nhello all\n")
w('long-subject', H('Long ' + ' '.join(['filler'] * 200) + ' endmarker', mid='long') + "\nbody\n")
w('greek', H('ΟΔΟΣ', mid='greek').encode() + b"Content-Type: text/plain; charset=iso-8859-7\n\n"
  + "Καλημέρα οδός\n".encode('iso-8859-7'))
w('html-only', H('HTML only') + "Content-Type: text/html; charset=utf-8\n\n"
  "<html><head><style>p {color: red}</style><script>var x = 'scriptword';</script></head>"
  "<body><p>Price:&nbsp;100&#8364; &lt;tag&gt;</p></body></html>\n")
w('lf-bare', "From: lf@example.org\nTo: x@example.net\nSubject: bare LF mail\nDate: Fri, 1 Mar 2019 12:00:00 +0000\n\n"
  "line one\nline two kiwi\n")
w('no-date-no-body', "From: nobody@example.org\nSubject: header only\n")
w('folded-subject', H('=?utf-8?q?Hello?=\n =?utf-8?q?_World?= and\n\tmore words', mid='folded') + "\nx\n")
w('unclosed-multipart', H('Unclosed') + "Content-Type: multipart/mixed; boundary=u\n\n--u\nContent-Type: text/plain\n\n"
  "part one mango\n--u\n\npart two papaya\n")
w('big', H('Big one') + "\n" + ''.join(f'line {i} filler text for a large message\n' for i in range(2000))
  + "needle at the very end\n")
w('unknown-charset', H('Unknown charset').encode() + b"Content-Type: text/plain; charset=x-weird\n\ncaf\xe9 au lait\n")
w('west-midnight', H('West coast', date='Sun, 31 Dec 2023 23:30:00 -0800') + "\nnew year eve\n")
w('cp1252', H('Smart quotes').encode() + b"Content-Type: text/plain; charset=windows-1252\n\n\x93quoted\x94 costs \x80 5\n")
w('old-2013', H('Old one', date='Thu, 10 Jan 2013 10:00:00 +0000') + "\nancient history\n")
