package cluster

import (
	"encoding/json"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// warm does, once per process, the one-time work of the first request of
// each kind the protocol sends: protobuf sets up each message type's
// encoder on its first use, and encoding/json each Go type's, about 1 ms
// of CPU in all. An agent calls it at its start, so that the first
// restore it serves (on a busy node, while every node restores at once)
// does not pay it. It sends nothing.
var warm = sync.OnceFunc(func() {
	key, val := []byte("k"), []byte("v")
	hdr := &pb.ResponseHeader{Revision: 1}
	for _, m := range []proto.Message{
		// vote, commit, abort, outcome: compares, puts and gets in a Txn.
		&pb.TxnRequest{
			Compare: []*pb.Compare{{Result: pb.Compare_EQUAL, Target: pb.Compare_CREATE, Key: key, TargetUnion: &pb.Compare_CreateRevision{}}},
			Success: []*pb.RequestOp{
				{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: val}}},
				{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key, RangeEnd: key}}},
			},
		},
		&pb.TxnResponse{Header: hdr, Succeeded: true, Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: hdr}}},
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Header: hdr, Kvs: []*mvccpb.KeyValue{{Key: key, Value: val}}, Count: 1}}},
		}},
		// The decision's watch.
		&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: key, RangeEnd: key}}},
		&pb.WatchResponse{Header: hdr, Events: []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: key, Value: val}}}},
	} {
		b, err := proto.Marshal(m)
		if err == nil {
			_ = proto.Unmarshal(b, m.ProtoReflect().New().Interface())
		}
	}
	// The published plan, as readReport decodes it.
	b, err := json.Marshal(attemptRecord{ID: "warm", Plan: Plan{Name: "warm", Nodes: []PlanNode{{ID: "n", From: "/"}}}})
	if err == nil {
		_ = json.Unmarshal(b, &attemptRecord{})
	}
})
