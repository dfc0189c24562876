package rtc

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
)

// gcmSender is the sending half of SRTP with SRTP_AEAD_AES_128_GCM
// (RFC 7714), which Reel offers first: the packet transform around Go's
// AES-GCM. pion's srtp.Context does the same behind a map of per-SSRC
// state, a second parse of the header and a nonce allocated per packet,
// which at 500 viewers were a third of the SRTP cost (BENCHMARKS.md);
// here a viewer's two SSRCs' state sits in the writer and the nonce is
// a field of it. Decryption, SRTCP and AES-CM stay with pion.
type gcmSender struct {
	aead    cipher.AEAD
	salt    [12]byte
	nonce   [12]byte
	streams []rolloverState
}

// rolloverState is one SSRC's packet index as sent (RFC 3711 §3.3.1):
// the highest sequence number and the rollover counter that goes with it.
type rolloverState struct {
	ssrc    uint32
	roc     uint32
	highest uint16
}

const (
	gcmKeyLen  = 16
	gcmSaltLen = 12
	gcmTagLen  = 16
	// RFC 3711 §4.3.1 labels.
	labelSRTPEncryption = 0x00
	labelSRTPSalt       = 0x02
)

// newGCMSender derives the session key and salt from the master key and
// salt (RFC 3711 §4.3 with the AES-CM PRF, key derivation rate 0, as RFC
// 7714 §11 keeps it).
func newGCMSender(masterKey, masterSalt []byte) (*gcmSender, error) {
	if len(masterKey) != gcmKeyLen || len(masterSalt) != gcmSaltLen {
		return nil, errors.New("AES-128-GCM needs a 16-byte master key and a 12-byte master salt")
	}
	prf, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, err
	}
	key := deriveSessionKey(prf, masterSalt, labelSRTPEncryption, gcmKeyLen)
	salt := deriveSessionKey(prf, masterSalt, labelSRTPSalt, gcmSaltLen)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &gcmSender{aead: aead}
	copy(s.salt[:], salt)
	return s, nil
}

// deriveSessionKey is the AES-CM PRF's keystream (prf: AES with the
// master key) for label: the master
// salt, left-aligned in the counter block as libsrtp and pion place the
// 12-byte salt of the GCM profiles, XORed with the label at byte 7 (the
// index over the key derivation rate is 0), the block's last two bytes
// the counter.
func deriveSessionKey(prf cipher.Block, masterSalt []byte, label byte, n int) []byte {
	var iv [aes.BlockSize]byte
	copy(iv[:], masterSalt)
	iv[7] ^= label
	out := make([]byte, n)
	cipher.NewCTR(prf, iv[:]).XORKeyStream(out, out)
	return out
}

// rollover returns the rollover counter of the packet numbered seq on
// ssrc, and notes seq as sent. A packet after the highest (within half
// the sequence space) moves it, counting a wrap; one before it (a
// resend) belongs to the highest's counter, or the one before if it was
// sent before the wrap.
func (s *gcmSender) rollover(ssrc uint32, seq uint16) (uint32, error) {
	var st *rolloverState
	for i := range s.streams {
		if s.streams[i].ssrc == ssrc {
			st = &s.streams[i]
			break
		}
	}
	if st == nil {
		s.streams = append(s.streams, rolloverState{ssrc: ssrc, highest: seq})
		return 0, nil
	}
	if int16(seq-st.highest) > 0 {
		if seq < st.highest {
			st.roc++
			if st.roc == 0 {
				return 0, errors.New("SRTP packet index exhausted; the keys must be renewed")
			}
		}
		st.highest = seq
		return st.roc, nil
	}
	if seq > st.highest { // before the wrap
		if st.roc == 0 {
			return 0, errors.New("an SRTP packet from before the first one sent")
		}
		return st.roc - 1, nil
	}
	return st.roc, nil
}

// seal encrypts in place the packet in buf[:n], whose header is its
// first hdr bytes, and returns it with its tag; buf must have
// gcmTagLen bytes of room past n.
func (s *gcmSender) seal(buf []byte, n, hdr int, ssrc uint32, seq uint16) ([]byte, error) {
	if cap(buf) < n+gcmTagLen {
		return nil, io.ErrShortBuffer // Seal would move it out of buf
	}
	roc, err := s.rollover(ssrc, seq)
	if err != nil {
		return nil, err
	}
	// RFC 7714 §8.1: 0x0000 || SSRC || ROC || SEQ, XOR the session salt.
	iv := &s.nonce
	iv[0], iv[1] = 0, 0
	binary.BigEndian.PutUint32(iv[2:], ssrc)
	binary.BigEndian.PutUint32(iv[6:], roc)
	binary.BigEndian.PutUint16(iv[10:], seq)
	for i := range iv {
		iv[i] ^= s.salt[i]
	}
	out := s.aead.Seal(buf[hdr:hdr], iv[:], buf[hdr:n], buf[:hdr])
	return buf[:hdr+len(out)], nil
}
